package kset

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knock-go/knock/config"
)

// ipsetTimeout returns the timeout left of addr in the ipset, as the
// ipset command lists it.
func ipsetTimeout(t *testing.T, ns interface{ Name() string }, set, addr string) (int, bool) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name(), "ipset", "list", set).CombinedOutput()
	if err != nil {
		t.Fatalf("ipset list: %v: %s", err, out)
	}
	ms := regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(addr)+` timeout (\d+)$`).FindAllSubmatch(out, -1)
	if len(ms) > 1 {
		t.Errorf("%s is in %s %d times:\n%s", addr, set, len(ms), out)
	}
	if len(ms) == 0 {
		return 0, false
	}
	n, _ := strconv.Atoi(string(ms[0][1]))
	return n, true
}

func TestIPSet(t *testing.T) {
	if _, err := exec.LookPath("ipset"); err != nil {
		t.Skip("ipset is not installed (CI installs it)")
	}
	n, fd := labNetns(t)
	n.Run(t, "ipset", "create", "knock4", "hash:ip", "family", "inet", "timeout", "60")
	n.Run(t, "ipset", "create", "knock6", "hash:ip", "family", "inet6", "timeout", "60")
	n.Run(t, "ipset", "create", "plain4", "hash:ip", "family", "inet")
	n.Run(t, "ipset", "create", "net4", "hash:net", "family", "inet", "timeout", "60")
	d := &config.Door{Name: "ssh", CmdTimeout: 30 * time.Second, IPSet: "knock4", IPSet6: "knock6"}
	s, err := New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	s.Open(d, netip.MustParseAddr("198.18.0.2"), "", time.Now())
	s.Open(d, netip.MustParseAddr("2001:db8::2"), "", time.Now())
	s.Close(context.Background())
	if left, ok := ipsetTimeout(t, n, "knock4", "198.18.0.2"); !ok || left > 30 || left < 20 {
		t.Errorf("198.18.0.2 in knock4: %v, %d s left: want about 30", ok, left)
	}
	if _, ok := ipsetTimeout(t, n, "knock6", "2001:db8::2"); !ok {
		t.Errorf("2001:db8::2 is not in knock6")
	}
	if _, ok := ipsetTimeout(t, n, "knock4", "2001:db8::2"); ok {
		t.Errorf("2001:db8::2 is in knock4")
	}

	// A re-knock with a longer Cmd_Timeout pushes the expiry out.
	d.CmdTimeout = time.Hour
	s, err = New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	s.Open(d, netip.MustParseAddr("198.18.0.2"), "", time.Now())
	s.Close(context.Background())
	if left, ok := ipsetTimeout(t, n, "knock4", "198.18.0.2"); !ok || left < 3000 {
		t.Errorf("after the re-knock 198.18.0.2 has %d s left (present %v): want about 3600", left, ok)
	}

	for _, tt := range []struct {
		name string
		d    *config.Door
		msg  string
	}{
		{"no ipset", &config.Door{Name: "ssh", IPSet: "nosuch"},
			"[ssh] IPSet = nosuch: there is no ipset nosuch: create it with: ipset create nosuch hash:ip family inet timeout 60"},
		{"wrong family", &config.Door{Name: "ssh", IPSet: "knock6"},
			"[ssh] IPSet = knock6: the ipset is not of family inet: create it with: ipset destroy knock6 && ipset create knock6 hash:ip family inet timeout 60"},
		{"wrong type", &config.Door{Name: "ssh", IPSet: "net4"},
			"[ssh] IPSet = net4: the ipset is hash:net, not hash:ip: create it with: ipset destroy net4 && ipset create net4 hash:ip family inet timeout 60"},
		{"IPv4 ipset for IPv6", &config.Door{Name: "ssh", IPSet6: "plain4"},
			"[ssh] IPSet_6 = plain4: the ipset is not of family inet6: create it with: ipset destroy plain4 && ipset create plain4 hash:ip family inet6 timeout 60"},
		{"no timeout", &config.Door{Name: "ssh", IPSet: "plain4"},
			"[ssh] IPSet = plain4: the ipset has no timeout, so its entries would never expire: create it with: ipset destroy plain4 && ipset create plain4 hash:ip family inet timeout 60"},
	} {
		_, err := New([]*config.Door{tt.d}, Options{NetNSFd: fd})
		var se *SetError
		if !errors.As(err, &se) || err.Error() != tt.msg {
			t.Errorf("%s: New: %v\nwant %s", tt.name, err, tt.msg)
		}
	}
}

// TestNeverShorterIPSet: the same with an ipset.
func TestNeverShorterIPSet(t *testing.T) {
	if _, err := exec.LookPath("ipset"); err != nil {
		t.Skip("ipset is not installed (CI installs it)")
	}
	n, fd := labNetns(t)
	n.Run(t, "ipset", "create", "knock4", "hash:ip", "family", "inet", "timeout", "60")
	n.Run(t, "ipset", "add", "knock4", "198.18.0.9", "timeout", "7200")
	long := &config.Door{Name: "long", CmdTimeout: time.Hour, IPSet: "knock4"}
	short := &config.Door{Name: "short", CmdTimeout: 30 * time.Second, IPSet: "knock4"}
	a := netip.MustParseAddr("198.18.0.2")
	for _, ds := range [][]*config.Door{{long}, {short}, {short, long}, {long, short}} {
		s, err := New([]*config.Door{long, short}, Options{NetNSFd: fd})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			s.Open(d, a, "", time.Now())
		}
		s.Open(short, netip.MustParseAddr("198.18.0.9"), "", time.Now())
		s.Close(context.Background())
		if left, ok := ipsetTimeout(t, n, "knock4", "198.18.0.2"); !ok || left < 3500 {
			t.Errorf("after knocks on %v, 198.18.0.2 has %d s left (present %v): want about 3600", names(ds), left, ok)
		}
		if left, ok := ipsetTimeout(t, n, "knock4", "198.18.0.9"); !ok || left < 7100 {
			t.Errorf("after a knock on short, 198.18.0.9 has %d s left (present %v): want about 7200", left, ok)
		}
	}
}

// TestIPSetCrowd: 10,000 knockers at once land in the ipset, in requests
// of many entries; a request the kernel refuses part of (the set is
// full) still adds what fits, and each entry that did not is logged.
func TestIPSetCrowd(t *testing.T) {
	if _, err := exec.LookPath("ipset"); err != nil {
		t.Skip("ipset is not installed (CI installs it)")
	}
	n, fd := labNetns(t)
	n.Run(t, "ipset", "create", "crowd4", "hash:ip", "family", "inet", "timeout", "60")
	n.Run(t, "ipset", "create", "small4", "hash:ip", "family", "inet", "timeout", "60", "maxelem", "5")
	crowd := &config.Door{Name: "crowd", CmdTimeout: time.Minute, IPSet: "crowd4"}
	small := &config.Door{Name: "small", CmdTimeout: time.Minute, IPSet: "small4"}
	var (
		mu     sync.Mutex
		errors []string
	)
	logf := func(f string, a ...any) {
		if l := fmt.Sprintf(f, a...); strings.Contains(l, "error") {
			mu.Lock()
			errors = append(errors, l)
			mu.Unlock()
		}
	}
	s, err := New([]*config.Door{crowd, small}, Options{NetNSFd: fd, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("198.18.0.0")
	for i := range 10000 {
		a = a.Next()
		s.Open(crowd, a, "", time.Now())
		if i < 8 {
			s.Open(small, a, "", time.Now())
		}
	}
	s.Close(context.Background())
	out := n.Run(t, "ipset", "list", "-t", "crowd4")
	if !strings.Contains(out, "Number of entries: 10000") || s.Dropped() != 0 {
		t.Errorf("crowd4, %d dropped:\n%s\nwant 10000 entries and 0 dropped", s.Dropped(), out)
	}
	out = n.Run(t, "ipset", "list", "-t", "small4")
	if !strings.Contains(out, "Number of entries: 5") || len(errors) != 3 || !strings.Contains(errors[0], "the ipset is full") {
		t.Errorf("small4:\n%s\nerrors %q: want 5 entries and 3 errors", out, errors)
	}
}

// TestIPSetForeignEntry: an entry another program adds, with a longer
// timeout, while the Sets run is never shortened by a knock.
func TestIPSetForeignEntry(t *testing.T) {
	if _, err := exec.LookPath("ipset"); err != nil {
		t.Skip("ipset is not installed (CI installs it)")
	}
	n, fd := labNetns(t)
	n.Run(t, "ipset", "create", "knock4", "hash:ip", "family", "inet", "timeout", "60")
	d := &config.Door{Name: "ssh", CmdTimeout: 30 * time.Second, IPSet: "knock4"}
	s, err := New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	s.Open(d, netip.MustParseAddr("198.18.0.2"), "", time.Now())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := ipsetTimeout(t, n, "knock4", "198.18.0.2"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("198.18.0.2 not added")
		}
	}
	n.Run(t, "ipset", "add", "knock4", "198.18.0.9", "timeout", "7200")
	s.Open(d, netip.MustParseAddr("198.18.0.9"), "", time.Now())
	s.Close(context.Background())
	if left, ok := ipsetTimeout(t, n, "knock4", "198.18.0.9"); !ok || left < 7100 {
		t.Errorf("198.18.0.9 has %d s left (present %v): want the 7200 s it was given by hand", left, ok)
	}
}

package kset

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/netlab"
)

const ruleset = `table inet knockd {
	set ssh4 { type ipv4_addr; flags timeout; }
	set ssh6 { type ipv6_addr; flags timeout; }
	set forever4 { type ipv4_addr; }
}
`

// labNetns returns a namespace with the ruleset loaded and an fd on it.
func labNetns(t testing.TB) (*netlab.Netns, int) {
	t.Helper()
	n := netlab.NewNetns(t, "kset")
	f := filepath.Join(t.TempDir(), "ruleset.nft")
	if err := os.WriteFile(f, []byte(ruleset), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Run(t, "nft", "-f", f)
	fd, err := unix.Open("/var/run/netns/"+n.Name(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return n, fd
}

func door(v4, v6 string, timeout time.Duration) *config.Door {
	d := &config.Door{Name: "ssh", CmdTimeout: timeout}
	if v4 != "" {
		d.NFTSet = config.NFTSet{Family: "inet", Table: "knockd", Name: v4}
	}
	if v6 != "" {
		d.NFTSet6 = config.NFTSet{Family: "inet", Table: "knockd", Name: v6}
	}
	return d
}

// elements lists a set's elements as nft prints them, one a line.
func elements(t *testing.T, n *netlab.Netns, set string) []string {
	t.Helper()
	out := n.Run(t, "nft", "list", "set", "inet", "knockd", set)
	_, rest, ok := strings.Cut(out, "elements = {")
	if !ok {
		return nil
	}
	rest, _, _ = strings.Cut(rest, "}")
	var es []string
	for _, e := range strings.Split(rest, ",") {
		if e = strings.Join(strings.Fields(e), " "); e != "" {
			es = append(es, e)
		}
	}
	return es
}

func TestAddBothFamiliesAndReknock(t *testing.T) {
	n, fd := labNetns(t)
	d := door("ssh4", "ssh6", 30*time.Second)
	var (
		mu    sync.Mutex
		lines []string
	)
	logf := func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, a...))
	}
	s, err := New([]*config.Door{d}, Options{NetNSFd: fd, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:db8::2")
	s.Open(d, v4, "198.18.0.2", time.Now())
	s.Open(d, v6, "2001:db8::2", time.Now())
	s.Open(d, netip.MustParseAddr("::ffff:198.18.0.3"), "198.18.0.3", time.Now())
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e4, e6 := elements(t, n, "ssh4"), elements(t, n, "ssh6")
	if len(e4) != 2 || !strings.HasPrefix(e4[0], "198.18.0.") || !strings.Contains(e4[0], "timeout 30s") {
		t.Errorf("ssh4 elements %q: want 198.18.0.2 and 198.18.0.3 with timeout 30s", e4)
	}
	if len(e6) != 1 || !strings.HasPrefix(e6[0], "2001:db8::2 timeout 30s") {
		t.Errorf("ssh6 elements %q: want 2001:db8::2 with timeout 30s", e6)
	}
	want := "ssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 30 s"
	if !slices.Contains(lines, want) {
		t.Errorf("log lines %q: want %q", lines, want)
	}

	// A re-knock, with a longer Cmd_Timeout, pushes the expiry out on the
	// one element.
	d.CmdTimeout = time.Hour
	s, err = New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	s.Open(d, v4, "198.18.0.2", time.Now())
	s.Close(context.Background())
	e4 = elements(t, n, "ssh4")
	var got []string
	for _, e := range e4 {
		if strings.HasPrefix(e, "198.18.0.2 ") {
			got = append(got, e)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], "timeout 1h") || !expiresWithin(got[0], 59*time.Minute, time.Hour) {
		t.Errorf("after the re-knock, 198.18.0.2 is %q: want one element with timeout 1h expiring in 59m...", got)
	}
}

func TestExpires(t *testing.T) {
	n, fd := labNetns(t)
	d := door("ssh4", "", 1*time.Second)
	s, err := New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	s.Open(d, netip.MustParseAddr("198.18.0.2"), "198.18.0.2", time.Now())
	s.Close(context.Background())
	if e := elements(t, n, "ssh4"); len(e) != 1 {
		t.Fatalf("elements %q: want 198.18.0.2", e)
	}
	for deadline := time.Now().Add(10 * time.Second); len(elements(t, n, "ssh4")) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("198.18.0.2 still in the set 10 s after its 1 s timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCrowd: 10,000 knockers at once all land in the set.
func TestCrowd(t *testing.T) {
	n, fd := labNetns(t)
	d := door("ssh4", "", time.Minute)
	s, err := New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	base := netip.MustParseAddr("198.18.0.0")
	a := base
	for range 10000 {
		a = a.Next()
		s.Open(d, a, "", time.Now())
	}
	s.Close(context.Background())
	if got := len(elements(t, n, "ssh4")); got != 10000 || s.Dropped() != 0 {
		t.Errorf("%d elements in the set, %d dropped: want 10000 and 0", got, s.Dropped())
	}
}

func TestCheck(t *testing.T) {
	_, fd := labNetns(t)
	tests := []struct {
		name string
		d    *config.Door
		msg  string
	}{
		{"no table", &config.Door{Name: "ssh", NFTSet: config.NFTSet{Family: "ip", Table: "knockd", Name: "ssh4"}},
			"[ssh] NFT_Set = ip knockd ssh4: there is no table ip knockd: create it with: nft add table ip knockd && nft add set ip knockd ssh4 '{ type ipv4_addr; flags timeout; }'"},
		{"no set", door("", "nosuch", 0),
			"[ssh] NFT_Set_6 = inet knockd nosuch: table inet knockd has no set nosuch: create it with: nft add set inet knockd nosuch '{ type ipv6_addr; flags timeout; }'"},
		{"wrong family", door("ssh6", "", 0),
			"[ssh] NFT_Set = inet knockd ssh6: the set holds ipv6_addr, not ipv4_addr: create it with: nft delete set inet knockd ssh6 && nft add set inet knockd ssh6 '{ type ipv4_addr; flags timeout; }'"},
		{"no timeouts", door("forever4", "", 0),
			"[ssh] NFT_Set = inet knockd forever4: the set has no timeouts (flags timeout), so its elements would never expire: create it with: nft delete set inet knockd forever4 && nft add set inet knockd forever4 '{ type ipv4_addr; flags timeout; }'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New([]*config.Door{tt.d}, Options{NetNSFd: fd})
			var se *SetError
			if !errors.As(err, &se) || err.Error() != tt.msg {
				t.Errorf("New: %v\nwant *SetError %s", err, tt.msg)
			}
		})
	}
}

// TestNeverShorterNFT: two doors sharing a set with different
// Cmd_Timeouts, and an element put there by hand with a longer timeout:
// no knock ever shortens an element's time left, nor adds it twice.
func TestNeverShorterNFT(t *testing.T) {
	n, fd := labNetns(t)
	n.Run(t, "nft", "add element inet knockd ssh4 { 198.18.0.9 timeout 2h }")
	long, short := door("ssh4", "", time.Hour), door("ssh4", "", 30*time.Second)
	long.Name, short.Name = "long", "short"
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
		es := elements(t, n, "ssh4")
		if got := matching(es, "198.18.0.2 "); len(got) != 1 || !expiresWithin(got[0], 59*time.Minute, time.Hour) {
			t.Errorf("after knocks on %v, 198.18.0.2 is %q: want one element expiring in 59m...", names(ds), got)
		}
		if got := matching(es, "198.18.0.9 "); len(got) != 1 || !strings.Contains(got[0], "timeout 2h ") || !expiresWithin(got[0], 119*time.Minute, 2*time.Hour) {
			t.Errorf("after a knock on short, 198.18.0.9 is %q: want its 2h left as they were", got)
		}
	}
}

// expiresWithin reports whether nft lists element e as expiring in more
// than lo and at most hi: "expires 59m59s990ms", or "expires 1h" when it
// is listed within the millisecond it was put.
func expiresWithin(e string, lo, hi time.Duration) bool {
	_, left, ok := strings.Cut(e, "expires ")
	if !ok {
		return false
	}
	left, _, _ = strings.Cut(left, " ")
	d, err := time.ParseDuration(left)
	return err == nil && d > lo && d <= hi
}

func matching(es []string, prefix string) []string {
	var got []string
	for _, e := range es {
		if strings.HasPrefix(e, prefix) {
			got = append(got, e)
		}
	}
	return got
}

func names(ds []*config.Door) []string {
	var ns []string
	for _, d := range ds {
		ns = append(ns, d.Name)
	}
	return ns
}

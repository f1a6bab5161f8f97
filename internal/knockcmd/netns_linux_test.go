package knockcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// The two ends of the test link, in namespaces of their own: nothing is
// added to the host's own network. 198.18.0.0/15 is for benchmarking
// (RFC 2544) and never routed.
var (
	clientAddr = netip.MustParseAddr("198.18.0.1")
	serverAddr = netip.MustParseAddr("198.18.0.2")
)

// The server's firewall: the knock ports drop silently, as a host guarded
// by a knock daemon does, except those that answer with a rejection.
const serverRules = `
table inet knocktest {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 7001 counter drop
		tcp dport 7002 counter drop
		tcp dport 7003 counter drop
		tcp dport 7011 counter drop
		tcp dport 7012 counter drop
		tcp dport 7013 counter drop
		tcp dport 7004 counter reject with icmpx type admin-prohibited
		tcp dport 7005 counter reject with tcp reset
		udp dport 7006 counter drop
	}
}
`

type netnsPair struct {
	client, server *netlab.Netns
}

// newNetnsPair creates two network namespaces joined by a veth pair,
// clientAddr on one end and serverAddr on the other, with serverRules in
// the server's. It skips the test where netlab cannot build networks, or
// without nft.
func newNetnsPair(t *testing.T) *netnsPair {
	t.Helper()
	netlab.Require(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skipf("needs nft: %v", err)
	}
	p := &netnsPair{client: netlab.NewNetns(t, "knocktest-c"), server: netlab.NewNetns(t, "knocktest-s")}
	netlab.NewVeth(t, p.client, p.server, netlab.Addressing{A: clientAddr, B: serverAddr, NoIPv6: true})
	cmd := p.server.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(serverRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("loading the server's rules: %v: %s", err, out)
	}
	return p
}

// inClient runs f on a thread that has entered the client namespace, so
// the sockets f opens live there.
func (p *netnsPair) inClient(t *testing.T, f func()) {
	t.Helper()
	if err := p.client.Do(func() error { f(); return nil }); err != nil {
		t.Fatalf("entering namespace %s: %v", p.client, err)
	}
}

var counterRE = regexp.MustCompile(`(tcp|udp) dport (\d+) counter packets (\d+)`)

// packets returns how many packets each server rule counted, by
// "proto/port".
func (p *netnsPair) packets(t *testing.T) map[string]int {
	t.Helper()
	out, err := p.server.Command("nft", "list", "table", "inet", "knocktest").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	m := make(map[string]int)
	for _, s := range counterRE.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(s[3])
		m[s[1]+"/"+s[2]] = n
	}
	return m
}

func TestNetns(t *testing.T) {
	t.Parallel()
	p := newNetnsPair(t)

	t.Run("drop", func(t *testing.T) {
		// A host that drops the knock ports: each TCP knock costs the
		// timeout, and a 3-port knock about three times that.
		var results []Result
		var err error
		var took time.Duration
		var out bytes.Buffer
		p.inClient(t, func() {
			opts := Options{Verbose: true, Observe: func(r Result) { results = append(results, r) }}
			start := time.Now()
			err = Run(context.Background(), opts, serverAddr.String(), []string{"7001", "7002", "7003"}, &out)
			took = time.Since(start)
		})
		if err != nil {
			t.Fatalf("knocking a dropping host: %v", err)
		}
		if len(results) != 3 {
			t.Fatalf("got %d results, want 3", len(results))
		}
		for _, r := range results {
			if r.Outcome != TimedOut {
				t.Errorf("knock %v: %v, want %v", r.Knock, r.Outcome, TimedOut)
			}
			if r.Elapsed < DefaultTimeout*9/10 {
				t.Errorf("knock %v took %v, want about %v", r.Knock, r.Elapsed, DefaultTimeout)
			}
		}
		// About 1.5 s. The limit is loose because a loaded machine fires
		// timers late; what it catches is a knock left to the kernel's
		// connect timeout, which is two minutes.
		if limit := 3*DefaultTimeout + 3*time.Second; took > limit {
			t.Errorf("3 dropped knocks took %v, want about %v and at most %v", took, 3*DefaultTimeout, limit)
		}
		t.Logf("3 dropped knocks took %v", took)
		want := fmt.Sprintf("hitting tcp %[1]s:7001\nhitting tcp %[1]s:7002\nhitting tcp %[1]s:7003\n", serverAddr)
		if out.String() != want {
			t.Errorf("output %q, want %q", out.String(), want)
		}
		// The SYN of each knock reached the host, once: the kernel would
		// retransmit it after a second, and the knock gave up before.
		// (A machine stalled long enough may see the retransmission.)
		got := p.packets(t)
		for _, r := range results {
			n := got[fmt.Sprintf("tcp/%d", r.Knock.Port)]
			if n < 1 || n > 1 && r.Elapsed < time.Second {
				t.Errorf("knock %v (%v): %d packets reached the host, want 1", r.Knock, r.Elapsed, n)
			}
		}
	})

	t.Run("nowait", func(t *testing.T) {
		// knock 0.8's way: one SYN, no wait.
		var results []Result
		var err error
		p.inClient(t, func() {
			opts := Options{Timeout: NoWait, Observe: func(r Result) { results = append(results, r) }}
			err = Run(context.Background(), opts, serverAddr.String(), []string{"7011", "7012", "7013"}, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if r.Outcome != Sent {
				t.Errorf("knock %v: %v, want %v", r.Knock, r.Outcome, Sent)
			}
		}
		// The SYN leaves during connect(2), before the socket is closed.
		got := p.packets(t)
		for _, port := range []string{"tcp/7011", "tcp/7012", "tcp/7013"} {
			if got[port] != 1 {
				t.Errorf("%s: %d packets reached the host, want 1", port, got[port])
			}
		}
	})

	t.Run("rejected", func(t *testing.T) {
		// A firewall's answer to a knock that reached the host is not an
		// error: firewalld answers "admin prohibited", which connect(2)
		// reports as EHOSTUNREACH.
		var results []Result
		var err error
		p.inClient(t, func() {
			opts := Options{Timeout: time.Minute, Observe: func(r Result) { results = append(results, r) }}
			err = Run(context.Background(), opts, serverAddr.String(), []string{"7004", "7005", "7006:udp"}, nil)
		})
		if err != nil {
			t.Fatalf("knocking through a rejecting firewall: %v", err)
		}
		want := []struct {
			outcome Outcome
			answer  error
		}{{Rejected, syscall.EHOSTUNREACH}, {Rejected, syscall.ECONNREFUSED}, {Sent, nil}}
		if len(results) != len(want) {
			t.Fatalf("got %d results, want %d", len(results), len(want))
		}
		for i, r := range results {
			if r.Outcome != want[i].outcome || want[i].answer != nil && !errors.Is(r.Answer, want[i].answer) {
				t.Errorf("knock %v: %v (%v), want %v (%v)", r.Knock, r.Outcome, r.Answer, want[i].outcome, want[i].answer)
			}
		}
		got := p.packets(t)
		for _, port := range []string{"tcp/7004", "tcp/7005", "udp/7006"} {
			if got[port] != 1 {
				t.Errorf("%s: %d packets reached the host, want 1", port, got[port])
			}
		}
	})

	t.Run("no route", func(t *testing.T) {
		// A knock that cannot leave this host is an error.
		for _, arg := range []string{"7001", "7001:udp"} {
			var err error
			p.inClient(t, func() {
				err = Run(context.Background(), Options{}, "198.19.255.1", []string{arg}, nil)
			})
			if !errors.Is(err, syscall.ENETUNREACH) {
				t.Errorf("knocking %s with no route: %v, want ENETUNREACH", arg, err)
			}
		}
	})

	t.Run("cancel", func(t *testing.T) {
		var err error
		var took time.Duration
		p.inClient(t, func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			err = Run(ctx, Options{Timeout: time.Hour}, serverAddr.String(), []string{"7001"}, nil)
			took = time.Since(start)
		})
		if !errors.Is(err, context.Canceled) || took >= time.Hour {
			t.Errorf("cancelled knock: %v after %v, want context.Canceled", err, took)
		}
	})
}

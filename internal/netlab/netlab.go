package netlab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// commandTimeout bounds every setup command (ip, nft) that netlab runs.
const commandTimeout = 30 * time.Second

var (
	availOnce sync.Once
	availErr  error
)

// Available reports why this process cannot build namespaced networks, or
// nil when it can. The answer is computed once.
func Available() error {
	availOnce.Do(func() { availErr = available() })
	return availErr
}

// Require skips the test, with the reason, unless this process can build
// namespaced networks: Linux, root (CAP_SYS_ADMIN), the ip command and
// /dev/net/tun. Every constructor in this package calls it.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("netlab: %v", err)
	}
}

// seq makes names unique within this process; the pid and a random part
// make them unique across processes and against leftovers of a killed run.
var seq atomic.Uint64

// Netns is a network namespace created for one test, named under
// /var/run/netns so that "ip netns exec" and "ip -n" reach it.
type Netns struct {
	name string
	devs atomic.Uint64 // numbers the devices netlab creates in it
}

// NewNetns creates a network namespace whose name starts with prefix and
// is unique to this run, brings its loopback up, and deletes it when the
// test ends. Processes still running in it keep it alive, without its
// name, until they exit: stop them in an earlier cleanup.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	Require(t)
	n := &Netns{name: fmt.Sprintf("%s-%d-%d-%04x", prefix, os.Getpid(), seq.Add(1), rand.Uint32()&0xffff)}
	if out, err := run("ip", "netns", "add", n.name); err != nil {
		t.Fatalf("netlab: ip netns add %s: %v: %s", n.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := run("ip", "netns", "del", n.name); err != nil {
			t.Errorf("netlab: ip netns del %s: %v: %s", n.name, err, out)
		}
	})
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// Name returns the namespace's name, as "ip netns" knows it.
func (n *Netns) Name() string { return n.name }

// String returns the namespace's name.
func (n *Netns) String() string { return n.name }

// Command returns a command that runs name with args inside the namespace
// (through "ip netns exec", which execs it: the process's pid is the
// command's own, so signals reach it).
func (n *Netns) Command(name string, arg ...string) *exec.Cmd {
	return exec.Command("ip", n.execArgs(name, arg)...)
}

// CommandContext is Command with a context that kills the process.
func (n *Netns) CommandContext(ctx context.Context, name string, arg ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", n.execArgs(name, arg)...)
}

func (n *Netns) execArgs(name string, arg []string) []string {
	return append([]string{"netns", "exec", n.name, name}, arg...)
}

// Run runs name with args inside the namespace and returns its combined
// output; it fails the test if the command fails or takes more than 30 s.
// Call it from the test's goroutine.
func (n *Netns) Run(t testing.TB, name string, arg ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := output(n.CommandContext(ctx, name, arg...))
	if err != nil {
		t.Fatalf("netlab: in %s: %s %s: %v: %s", n.name, name, strings.Join(arg, " "), err, out)
	}
	return out
}

// IP runs "ip -n NAME args..." and returns its output; it fails the test
// if the command fails. Call it from the test's goroutine.
func (n *Netns) IP(t testing.TB, arg ...string) string {
	t.Helper()
	out, err := n.ip(arg...)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return out
}

func (n *Netns) ip(arg ...string) (string, error) {
	out, err := run("ip", append([]string{"-n", n.name}, arg...)...)
	if err != nil {
		return out, fmt.Errorf("ip -n %s %s: %w: %s", n.name, strings.Join(arg, " "), err, out)
	}
	return out, nil
}

// Do calls f on an OS thread that has entered the namespace, and returns
// f's error. Sockets and devices f opens belong to the namespace for their
// whole life, wherever they are used afterwards; goroutines f starts do
// not run in it.
func (n *Netns) Do(f func() error) error { return doIn(n.name, f) }

// nextDev returns a device name, unique in the namespace, made of base and
// a number.
func (n *Netns) nextDev(base string) string {
	return fmt.Sprintf("%s%d", base, n.devs.Add(1)-1)
}

// run runs a setup command, bounded in time, and returns its combined
// output.
func run(name string, arg ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return output(exec.CommandContext(ctx, name, arg...))
}

func output(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Endpoint is one end of a link: a device in a namespace and its
// addresses.
type Endpoint struct {
	NS    *Netns
	Dev   string     // the device's name inside NS
	Addr  netip.Addr // IPv4 address
	Addr6 netip.Addr // IPv6 address; the zero Addr when Addressing.NoIPv6 was set
}

// Addressing gives the addresses of a link's two ends. Each end gets its
// address as a point-to-point address whose peer is the other end, so
// each end has a /32 (/128) route to the other and nothing more.
type Addressing struct {
	// A and B are the IPv4 addresses of the ends; the zero Addr means
	// 198.18.0.1 and 198.18.0.2. They must lie in 198.18.0.0/15.
	A, B netip.Addr
	// A6 and B6 are the IPv6 addresses; the zero Addr means 2001:db8::1
	// and 2001:db8::2. They must lie in 2001:db8::/32.
	A6, B6 netip.Addr
	// NoIPv6 leaves IPv6 unconfigured.
	NoIPv6 bool
}

var (
	benchNet = netip.MustParsePrefix("198.18.0.0/15")
	docNet   = netip.MustParsePrefix("2001:db8::/32")
)

// resolve fills in the defaults and checks the ranges.
func (a Addressing) resolve() (Addressing, error) {
	def := func(p *netip.Addr, s string) {
		if !p.IsValid() {
			*p = netip.MustParseAddr(s)
		}
	}
	def(&a.A, "198.18.0.1")
	def(&a.B, "198.18.0.2")
	for _, p := range []netip.Addr{a.A, a.B} {
		if !benchNet.Contains(p) {
			return a, fmt.Errorf("address %v is outside %v", p, benchNet)
		}
	}
	if a.NoIPv6 {
		a.A6, a.B6 = netip.Addr{}, netip.Addr{}
	} else {
		def(&a.A6, "2001:db8::1")
		def(&a.B6, "2001:db8::2")
		for _, p := range []netip.Addr{a.A6, a.B6} {
			if !docNet.Contains(p) {
				return a, fmt.Errorf("address %v is outside %v", p, docNet)
			}
		}
	}
	if a.A == a.B || (!a.NoIPv6 && a.A6 == a.B6) {
		return a, fmt.Errorf("both ends have the same address")
	}
	return a, nil
}

// configureLink configures both ends of a link, and waits for the routes
// to their IPv6 peers: the kernel adds such a route only once it has seen
// the device's carrier come up, which it learns some time after both ends
// are up (up to a second on a busy machine). Until then a packet to the
// peer, or a route through it, has no way out.
func configureLink(a, b Endpoint) error {
	for _, e := range [][2]Endpoint{{a, b}, {b, a}} {
		if err := configure(e[0], e[1]); err != nil {
			return err
		}
	}
	for _, e := range [][2]Endpoint{{a, b}, {b, a}} {
		if !e[0].Addr6.IsValid() {
			continue
		}
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			out, err := e[0].NS.ip("-6", "route", "show", e[1].Addr6.String()+"/128", "dev", e[0].Dev)
			if err != nil {
				return err
			}
			if out != "" && !strings.Contains(out, "linkdown") {
				break
			}
			if time.Now().After(end) {
				return fmt.Errorf("%s/%s: no route to the peer %v after 10 s: %q", e[0].NS, e[0].Dev, e[1].Addr6, out)
			}
		}
	}
	return nil
}

// configure brings the device at e up and gives it its addresses, with
// the other end as peer.
func configure(e, peer Endpoint) error {
	// No link-local address: it would only add router solicitations and
	// MLD reports to the traffic a test sees.
	if _, err := e.NS.ip("link", "set", "dev", e.Dev, "addrgenmode", "none"); err != nil {
		return err
	}
	// Up first: the kernel installs the route to an IPv6 peer only for an
	// address added while the device is up.
	if _, err := e.NS.ip("link", "set", "dev", e.Dev, "up"); err != nil {
		return err
	}
	if _, err := e.NS.ip("addr", "add", e.Addr.String(), "peer", peer.Addr.String(), "dev", e.Dev); err != nil {
		return err
	}
	if e.Addr6.IsValid() {
		if _, err := e.NS.ip("addr", "add", e.Addr6.String(), "peer", peer.Addr6.String(), "dev", e.Dev, "nodad"); err != nil {
			return err
		}
	}
	return nil
}

// Veth is a veth pair joining two namespaces.
type Veth struct {
	A, B Endpoint

	deleted bool
}

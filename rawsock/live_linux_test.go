//go:build linux

package rawsock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/capture/capturetest"
	"github.com/knock-go/knock/internal/netlab"
	"github.com/knock-go/knock/wire"
)

// The live tests run the source on real sockets. They need CAP_NET_RAW
// and CAP_NET_ADMIN (a veth pair, a network namespace) and the ip
// command; without them they skip. They use 198.18.0.0/15 and
// 2001:db8::/32 only. A test that creates interfaces runs, whole, in a
// network namespace of its own (netlab.Isolate: the source opens sockets
// on goroutines of its own, which must all see the test's interfaces),
// so nothing it does reaches the namespace the suite runs in.

var liveSeq atomic.Int32

func needLive(t *testing.T) {
	t.Helper()
	netlab.Require(t) // root, the ip command: what namespaces need
	if err := Available(); err != nil {
		t.Skipf("skipping live test: cannot open packet sockets: %v", err)
	}
}

// liveEnv is a veth pair: host in this namespace (the test's own, see
// isolated), peer in the namespace ns.
type liveEnv struct {
	t          *testing.T
	self, ns   *netlab.Netns // the test's own namespace, the peer's
	cfg        netlab.VethConfig
	veth       *netlab.Veth
	host, peer string
	host4      netip.Addr // 198.18.n.1
	peer4      netip.Addr // 198.18.n.2
	host6      netip.Addr
	peer6      netip.Addr
	hostMAC    net.HardwareAddr
	// bridge, when set, is a bridge that host is a port of; the host's
	// addresses are on the bridge.
	bridge string
}

func newLiveEnv(t *testing.T) *liveEnv { return newLiveEnvBridged(t, false) }

// newLiveEnvBridged is newLiveEnv, with host a port of a bridge when
// bridged. The pair is made by createVeth.
func newLiveEnvBridged(t *testing.T, bridged bool) *liveEnv {
	needLive(t)
	// Names and addresses of its own for each pair in this namespace,
	// known before the pair exists (a test may watch for it).
	n := liveSeq.Add(1)
	e := &liveEnv{
		t:     t,
		self:  netlab.Self(t),
		ns:    netlab.NewNetns(t, "krs"),
		host:  fmt.Sprintf("krs%dh", n),
		peer:  fmt.Sprintf("krs%dp", n),
		host4: netip.AddrFrom4([4]byte{198, 18, byte(n), 1}),
		peer4: netip.AddrFrom4([4]byte{198, 18, byte(n), 2}),
		host6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", n)),
		peer6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::2", n)),
	}
	if bridged {
		e.bridge = netlab.NewBridge(t, e.self, fmt.Sprintf("krs%db", n))
	}
	e.cfg = netlab.VethConfig{
		Addressing: netlab.Addressing{A: e.host4, B: e.peer4, A6: e.host6, B6: e.peer6},
		AName:      e.host,
		BName:      e.peer,
		Bridge:     e.bridge,
	}
	return e
}

// isolated runs the calling live test in a network namespace of its own,
// and reports whether this process is the one that must run its body.
func isolated(t *testing.T) bool {
	t.Helper()
	needLive(t)
	return netlab.Isolate(t)
}

// createVeth makes the pair, up and addressed.
func (e *liveEnv) createVeth() {
	t := e.t
	t.Helper()
	e.veth = netlab.NewVethWith(t, e.self, e.ns, e.cfg)
	dev := e.host
	if e.bridge != "" {
		dev = e.bridge
	}
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	e.hostMAC = ifi.HardwareAddr
}

func (e *liveEnv) deleteVeth() { e.veth.Delete(e.t) }

// dial sends one TCP SYN from the peer to addr:port (a closed port: the
// host answers with a reset).
func (e *liveEnv) dial(addr netip.Addr, port uint16) {
	err := e.ns.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, port).String(), time.Second)
		if err == nil {
			c.Close()
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// udp sends a datagram from the peer to addr:port.
func (e *liveEnv) udp(addr netip.Addr, port uint16) {
	err := e.ns.Do(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(addr, port).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("knock"))
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// raw sends the IP packet b from the peer straight to the host's MAC
// address, past the peer's IP stack, so it can be anything.
func (e *liveEnv) raw(b []byte) {
	proto := unix.ETH_P_IP
	if b[0]>>4 == 6 {
		proto = unix.ETH_P_IPV6
	}
	err := e.ns.Do(func() error {
		ifi, err := net.InterfaceByName(e.peer)
		if err != nil {
			return err
		}
		c, err := packet.Listen(ifi, packet.Datagram, proto, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteTo(b, &packet.Addr{HardwareAddr: e.hostMAC})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// running is a Source under Run.
type running struct {
	src     *Source
	batches chan *capture.Batch
	events  chan capture.Event // the batches' events, one by one
	cancel  context.CancelFunc
	done    chan error

	mu   sync.Mutex
	logs []string
}

func startSource(t *testing.T, spec capture.Spec) *running {
	t.Helper()
	r := &running{batches: make(chan *capture.Batch), events: make(chan capture.Event, 100), done: make(chan error, 1)}
	go capturetest.Flatten(r.batches, r.events)
	src, err := New(spec, Options{Logf: func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		t.Logf("source: %s", line)
		r.mu.Lock()
		r.logs = append(r.logs, line)
		r.mu.Unlock()
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.src = src
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- src.Run(ctx, r.batches) }()
	t.Cleanup(func() {
		r.stop(t)
		src.Close()
	})
	return r
}

// stop ends Run and checks that it returns nil, promptly.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Run did not return within 5s of its context ending")
	}
}

func (r *running) logged(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// until calls send every 200ms until an event for which ok holds
// arrives, and returns the events that came before it.
func (r *running) until(t *testing.T, what string, send func(), ok func(capture.Event) bool) []capture.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var before []capture.Event
	for {
		send()
		tick := time.After(200 * time.Millisecond)
	wait:
		for {
			select {
			case ev := <-r.events:
				if ok(ev) {
					return before
				}
				before = append(before, ev)
			case <-tick:
				break wait
			case <-deadline:
				t.Fatalf("no event for %s within 10s; saw %v", what, before)
			}
		}
	}
}

// mark sends the marker datagram to addr:markPort from send and returns
// the events that arrived before it. Within one socket (one family) the
// events keep the packets' order, so anything sent before the marker
// that was going to be reported has been.
func (r *running) mark(t *testing.T, send func(netip.Addr, uint16), addr netip.Addr) []capture.Event {
	t.Helper()
	return r.until(t, "marker to "+addr.String(), func() { send(addr, markPort) }, func(ev capture.Event) bool {
		return ev.Proto == wire.UDP && ev.Port == markPort && ev.Dst == addr
	})
}

const markPort = 47999

// livePorts are the ports the live tests knock on.
const (
	portSyn   = 47001 // TCP, syn,!ack
	portUDP   = 47002 // UDP
	portAny   = 47003 // TCP, any flags
	portOther = 47004 // not watched
	portNew   = 47005 // watched after Update
)

func liveSpec(ifaces []string) capture.Spec {
	return capture.Spec{
		Ports: []capture.Port{
			{Proto: wire.TCP, Port: portSyn, Flags: []wire.FlagFilter{{Set: wire.SYN, Unset: wire.ACK}}},
			{Proto: wire.TCP, Port: portAny, Flags: []wire.FlagFilter{{}}},
			{Proto: wire.UDP, Port: portUDP},
			{Proto: wire.UDP, Port: markPort},
		},
		Interfaces: ifaces,
	}
}

func sameEvents(t *testing.T, what string, got []capture.Event, want []capture.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Src != w.Src || g.Dst != w.Dst || g.Port != w.Port || g.Proto != w.Proto || g.Flags != w.Flags {
			t.Errorf("%s: event %d = %+v, want %+v", what, i, g, w)
		}
		if g.Time.IsZero() || time.Since(g.Time) > time.Minute {
			t.Errorf("%s: event %d has time %v", what, i, g.Time)
		}
	}
}

func TestLiveAllInterfaces(t *testing.T) {
	if !isolated(t) {
		return
	}
	t.Run("ring", testLiveAllInterfaces)
	t.Run("recvfrom", func(t *testing.T) {
		// A kernel that refuses a ring gets the same events, one
		// recvfrom(2) at a time.
		withRing(t, 0)
		testLiveAllInterfaces(t)
	})
	t.Run("ring not mapped", func(t *testing.T) {
		// A ring the kernel set up but that could not be mapped is
		// taken off again, so that recvfrom(2) sees the packets.
		old := mmap
		mmap = func(int, int64, int, int, int) ([]byte, error) { return nil, unix.ENOMEM }
		t.Cleanup(func() { mmap = old })
		testLiveAllInterfaces(t)
	})
}

// withRing sets the ring size of the sockets the test opens.
func withRing(t *testing.T, bytes int) {
	old := ringBytes
	ringBytes = bytes
	t.Cleanup(func() { ringBytes = old })
}

func testLiveAllInterfaces(t *testing.T) {
	e := newLiveEnv(t)
	e.createVeth()
	r := startSource(t, liveSpec(nil))
	// The sockets are open since New: the first marker needs no retry,
	// but neighbour discovery may delay it.
	r.mark(t, e.udp, e.host4)
	r.mark(t, e.udp, e.host6)

	t.Run("IPv4", func(t *testing.T) {
		p, h := e.peer4.String(), e.host4.String()
		b := e.host4.As4()
		b[3] = 77
		notLocal := netip.AddrFrom4(b).String()

		e.dial(e.host4, portSyn)   // reported
		e.dial(e.host4, portOther) // not watched
		e.udp(e.host4, portUDP)    // reported
		// Wrong flags, dropped by the filter.
		e.raw(ip4(p, h, protoTCP, 0, nil, tcpHdr(1, portSyn, wire.ACK)))
		// IPv4 options: reported.
		e.raw(ip4(p, h, protoTCP, 0, []byte{0x94, 4, 0, 0}, tcpHdr(2, portSyn, wire.SYN)))
		// A non-first fragment.
		e.raw(ip4(p, h, protoUDP, 0x0010, nil, udpHdr(3, portUDP, nil)))
		// Sent to this host's MAC, but not to one of its addresses.
		e.raw(ip4(p, notLocal, protoUDP, 0, nil, udpHdr(4, portUDP, nil)))
		// ICMP echo.
		e.raw(ip4(p, h, 1, 0, nil, []byte{8, 0, 0, 0, 0xb7, 0xb2, 0, 1}))

		got := r.mark(t, e.udp, e.host4)
		sameEvents(t, "IPv4", got, []capture.Event{
			{Src: e.peer4, Dst: e.host4, Port: portSyn, Proto: wire.TCP, Flags: wire.SYN},
			{Src: e.peer4, Dst: e.host4, Port: portUDP, Proto: wire.UDP},
			{Src: e.peer4, Dst: e.host4, Port: portSyn, Proto: wire.TCP, Flags: wire.SYN},
		})
	})

	t.Run("IPv6", func(t *testing.T) {
		p, h := e.peer6.String(), e.host6.String()
		e.dial(e.host6, portSyn)   // reported
		e.dial(e.host6, portOther) // not watched
		e.udp(e.host6, portUDP)    // reported
		// Hop-by-hop and fragment headers, walked in Go: reported.
		e.raw(ip6(p, h, 0, cat(optHdr(44), fragHdr(protoUDP, 0, true)), udpHdr(5, portUDP, nil)))
		// A non-first fragment.
		e.raw(ip6(p, h, 44, fragHdr(protoUDP, 8, false), udpHdr(6, portUDP, nil)))
		// Wrong flags behind an extension header: the filter keeps it,
		// Go drops it.
		e.raw(ip6(p, h, 60, optHdr(protoTCP), tcpHdr(7, portSyn, wire.SYN|wire.ACK)))

		got := r.mark(t, e.udp, e.host6)
		sameEvents(t, "IPv6", got, []capture.Event{
			{Src: e.peer6, Dst: e.host6, Port: portSyn, Proto: wire.TCP, Flags: wire.SYN},
			{Src: e.peer6, Dst: e.host6, Port: portUDP, Proto: wire.UDP},
			{Src: e.peer6, Dst: e.host6, Port: portUDP, Proto: wire.UDP},
		})
	})

	t.Run("loopback once", func(t *testing.T) {
		local := func(addr netip.Addr, port uint16) {
			if port == markPort {
				c, err := net.Dial("udp", netip.AddrPortFrom(addr, port).String())
				if err != nil {
					t.Fatal(err)
				}
				c.Write([]byte("mark"))
				c.Close()
				return
			}
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, port).String(), time.Second)
			if err == nil {
				c.Close()
			}
		}
		for _, lo := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
			local(lo, portAny)
			got := r.mark(t, local, lo)
			var mine []capture.Event
			for _, ev := range got {
				if ev.Src == lo {
					mine = append(mine, ev)
				}
			}
			sameEvents(t, lo.String(), mine, []capture.Event{{Src: lo, Dst: lo, Port: portAny, Proto: wire.TCP, Flags: wire.SYN}})
		}
	})

	t.Run("Update", func(t *testing.T) {
		spec := liveSpec(nil)
		spec.Ports = append(spec.Ports, capture.Port{Proto: wire.UDP, Port: portNew})
		spec.Ports = spec.Ports[1:] // no more portSyn
		if err := r.src.Update(spec); err != nil {
			t.Fatal(err)
		}
		e.dial(e.host4, portSyn)
		e.udp(e.host4, portNew)
		got := r.mark(t, e.udp, e.host4)
		sameEvents(t, "after Update", got, []capture.Event{{Src: e.peer4, Dst: e.host4, Port: portNew, Proto: wire.UDP}})
	})

	st := r.src.Stats()
	t.Logf("stats: %+v", st)
	if st.Events == 0 || st.Received < st.Events || st.Ignored == 0 {
		t.Errorf("Stats = %+v: want events, and ignored packets", st)
	}
}

func TestLiveNamedInterface(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnv(t)
	r := startSource(t, liveSpec([]string{e.host}))
	if !r.logged("waiting for interface " + e.host) {
		t.Errorf("no %q in the log", "waiting for interface "+e.host)
	}

	// It appears.
	e.createVeth()
	knock := func(ev capture.Event) bool {
		return ev.Src == e.peer4 && ev.Dst == e.host4 && ev.Port == portSyn && ev.Flags == wire.SYN
	}
	r.until(t, "a knock after the interface appeared", func() { e.dial(e.host4, portSyn) }, knock)
	if !r.logged("attached to interface " + e.host) {
		t.Errorf("no %q in the log", "attached to interface "+e.host)
	}
	// Other interfaces are not watched: loopback is not reported.
	lo := netip.MustParseAddr("127.0.0.1")
	if c, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo, portAny).String(), time.Second); err == nil {
		c.Close()
	}
	for _, ev := range r.mark(t, e.udp, e.host4) {
		if ev.Src == lo {
			t.Errorf("loopback knock reported: %+v", ev)
		}
	}

	// Down and up again.
	e.self.IP(t, "link", "set", e.host, "down")
	e.self.IP(t, "link", "set", e.host, "up")
	r.until(t, "a knock after down and up", func() { e.dial(e.host4, portSyn) }, knock)

	// Deleted and created again: a new index.
	e.deleteVeth()
	e.createVeth()
	r.until(t, "a knock after the interface was re-created", func() { e.dial(e.host4, portSyn) }, knock)
	for _, want := range []string{"interface " + e.host + " is gone", "is down", "is up"} {
		if !r.logged(want) {
			t.Errorf("no %q in the log", want)
		}
	}

	// A new address: knocks on it count, those on the old one do not.
	b := e.host4.As4()
	b[3] = 3
	newAddr := netip.AddrFrom4(b)
	e.self.IP(t, "addr", "del", e.host4.String(), "peer", e.peer4.String(), "dev", e.host)
	e.self.IP(t, "addr", "add", newAddr.String(), "peer", e.peer4.String(), "dev", e.host)
	toNew := func() { e.raw(ip4(e.peer4.String(), newAddr.String(), protoUDP, 0, nil, udpHdr(9, portUDP, nil))) }
	r.until(t, "a knock on the new address", toNew, func(ev capture.Event) bool {
		return ev.Dst == newAddr && ev.Port == portUDP
	})
	e.raw(ip4(e.peer4.String(), e.host4.String(), protoUDP, 0, nil, udpHdr(9, portUDP, nil)))
	e.raw(ip4(e.peer4.String(), newAddr.String(), protoUDP, 0, nil, udpHdr(9, portUDP, nil)))
	got := r.until(t, "marker", func() {
		e.raw(ip4(e.peer4.String(), newAddr.String(), protoUDP, 0, nil, udpHdr(9, markPort, nil)))
	}, func(ev capture.Event) bool { return ev.Port == markPort })
	for len(got) > 0 && got[0].Dst == newAddr && got[0].Port == portUDP && len(got) > 1 {
		got = got[1:] // repeats of the retried knock above
	}
	sameEvents(t, "after the address change", got, []capture.Event{{Src: e.peer4, Dst: newAddr, Port: portUDP, Proto: wire.UDP}})

	// Gone for good: Run carries on until its context ends.
	e.deleteVeth()
	r.stop(t)
}

func TestLiveCloseEndsRun(t *testing.T) {
	needLive(t)
	src, err := New(liveSpec(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(context.Background(), make(chan *capture.Batch)) }()
	time.Sleep(50 * time.Millisecond)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := src.Run(context.Background(), make(chan *capture.Batch)); err == nil {
		t.Error("Run after Close returned nil")
	}
	if err := src.Update(liveSpec(nil)); err == nil {
		t.Error("Update after Close returned nil")
	}
}

// TestLiveRunServesOnce checks capture.Source's lifecycle: when Run
// returns the source is closed, so a second Run and an Update fail, and
// Close after it is a no-op.
func TestLiveRunServesOnce(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnv(t)
	e.createVeth()
	r := startSource(t, liveSpec(nil))
	r.mark(t, e.udp, e.host4)
	r.stop(t)

	if err := r.src.Run(context.Background(), r.batches); err == nil {
		t.Error("a second Run returned nil")
	}
	if err := r.src.Update(liveSpec(nil)); err == nil {
		t.Error("Update after Run returned nil")
	}
	if err := r.src.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}
}

// withoutCapNetRaw runs fn on a thread whose effective capabilities lack
// CAP_NET_RAW. The thread exits with the goroutine.
func withoutCapNetRaw(t *testing.T, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[unix.CAP_NET_RAW/32].Effective &^= 1 << (unix.CAP_NET_RAW % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("dropping CAP_NET_RAW: %v", err)
	}
}

func TestWithoutCapNetRaw(t *testing.T) {
	check := func() {
		err := Available()
		t.Logf("Available: %v", err)
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "setcap cap_net_raw+ep") {
			t.Errorf("Available() = %v, want a permission error with a hint", err)
		}
		for _, spec := range []capture.Spec{liveSpec(nil), liveSpec([]string{"lo"}), liveSpec([]string{"krs-nonexistent"})} {
			src, err := New(spec, Options{})
			if err == nil {
				src.Close()
			}
			if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_RAW") {
				t.Errorf("New(%q) = %v, want a permission error", spec.Interfaces, err)
			}
		}
	}
	if err := Available(); err != nil {
		// Unprivileged already: the case to test.
		check()
		return
	}
	withoutCapNetRaw(t, check)
}

// TestLiveOnce checks that a knock that crosses a bridge port and the
// bridge, or a VLAN-tagged link and its VLAN device, is reported once:
// the sockets see packets where IP does.
func TestLiveOnce(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnvBridged(t, true)
	e.createVeth()
	r := startSource(t, liveSpec(nil))
	r.mark(t, e.udp, e.host4)

	t.Run("bridge", func(t *testing.T) {
		e.dial(e.host4, portSyn)
		got := r.mark(t, e.udp, e.host4)
		sameEvents(t, "through the bridge", got, []capture.Event{{Src: e.peer4, Dst: e.host4, Port: portSyn, Proto: wire.TCP, Flags: wire.SYN}})
	})

	t.Run("VLAN", func(t *testing.T) {
		// VLAN 10 over the pair, in the other half of 198.18.0.0/15:
		// on the bridge here, on the peer's end there.
		b := e.host4.As4()
		vhost := netip.AddrFrom4([4]byte{198, 19, b[2], 1})
		vpeer := netip.AddrFrom4([4]byte{198, 19, b[2], 2})
		netlab.NewVLAN(t, netlab.Endpoint{NS: e.self, Dev: e.bridge}, e.veth.B, 10,
			netlab.Addressing{A: vhost, B: vpeer, NoIPv6: true})
		r.mark(t, e.udp, vhost)

		e.dial(vhost, portSyn)
		got := r.mark(t, e.udp, vhost)
		sameEvents(t, "through the VLAN", got, []capture.Event{{Src: vpeer, Dst: vhost, Port: portSyn, Proto: wire.TCP, Flags: wire.SYN}})
	})
}

// TestLiveUpdateInterfaces moves a running source from all interfaces to
// one and back, and checks that a bad Update changes nothing.
func TestLiveUpdateInterfaces(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnv(t)
	e.createVeth()
	r := startSource(t, liveSpec(nil))
	lo := netip.MustParseAddr("127.0.0.1")
	local := func(addr netip.Addr, port uint16) {
		c, err := net.Dial("udp", netip.AddrPortFrom(addr, port).String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.Close()
	}
	r.mark(t, local, lo)

	if err := r.src.Update(liveSpec([]string{e.host})); err != nil {
		t.Fatal(err)
	}
	if !r.logged("attached to interface " + e.host) {
		t.Errorf("no %q in the log", "attached to interface "+e.host)
	}
	// Loopback is no longer watched: its knock and marker vanish, the
	// veth marker arrives.
	local(lo, portUDP)
	local(lo, markPort)
	for _, ev := range r.mark(t, e.udp, e.host4) {
		if ev.Src == lo {
			t.Errorf("loopback reported while watching %s only: %+v", e.host, ev)
		}
	}

	bad := liveSpec(nil)
	bad.Ports = append(bad.Ports, capture.Port{Proto: 1, Port: 1})
	if err := r.src.Update(bad); err == nil {
		t.Error("Update accepted an ICMP port")
	}
	r.mark(t, e.udp, e.host4) // still watching the veth

	if err := r.src.Update(liveSpec(nil)); err != nil {
		t.Fatal(err)
	}
	r.mark(t, local, lo)
}

// TestLiveNoLeak checks that Run leaves no goroutine of the package
// behind.
func TestLiveNoLeak(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnv(t)
	e.createVeth()
	r := startSource(t, liveSpec([]string{e.host, "lo"}))
	r.mark(t, e.udp, e.host4)
	r.stop(t)
	r.src.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "rawsock.(*Source)") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Run returned:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLiveRingWraps sends far more datagrams than a small ring holds and
// checks that every one is either delivered, in order, or counted as
// dropped by the kernel: with a reader that keeps up, and with one held
// up until the burst is over.
func TestLiveRingWraps(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnv(t)
	e.createVeth()
	withRing(t, 64<<10) // 256 frames
	// Datagrams are told apart by port: watch a range of them.
	const first, ports = 20000, 200
	spec := liveSpec(nil)
	for p := uint16(first); p < first+ports; p++ {
		spec.Ports = append(spec.Ports, capture.Port{Proto: wire.UDP, Port: p})
	}
	slices.SortFunc(spec.Ports, func(a, b capture.Port) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	r := startSource(t, spec)
	r.mark(t, e.udp, e.host4)

	const sent = 20_000
	burst := func(t *testing.T, stall bool) {
		before := r.src.Stats().Dropped
		sendErr := make(chan error, 1)
		go func() {
			sendErr <- e.ns.Do(func() error {
				c, err := net.ListenPacket("udp4", "")
				if err != nil {
					return err
				}
				defer c.Close()
				for i := range sent {
					dst := &net.UDPAddr{IP: e.host4.AsSlice(), Port: first + i%ports}
					if _, err := c.WriteTo([]byte("x"), dst); err != nil {
						return err
					}
					if i%100 == 99 {
						// Stay under the veth backlog
						// (1,000), so that any loss
						// is the ring's.
						time.Sleep(200 * time.Microsecond)
					}
				}
				return nil
			})
		}()
		if stall {
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
		}
		var got []capture.Event
		var dropped uint64
		deadline := time.After(10 * time.Second)
		for uint64(len(got))+dropped < sent {
			select {
			case ev := <-r.events:
				got = append(got, ev)
				continue
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatalf("after 10s: %d delivered + %d dropped, of %d", len(got), dropped, sent)
			}
			dropped = r.src.Stats().Dropped - before
		}
		if !stall {
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
		}
		dropped = r.src.Stats().Dropped - before
		t.Logf("%d delivered, %d dropped by the kernel, of %d", len(got), dropped, sent)
		if uint64(len(got))+dropped != sent {
			t.Errorf("%d delivered + %d dropped = %d, want %d", len(got), dropped, uint64(len(got))+dropped, sent)
		}
		if stall && dropped == 0 {
			t.Errorf("nothing dropped while the reader was held up")
		}
		for i, ev := range got {
			if ev.Port < first || ev.Port >= first+ports {
				t.Fatalf("event %d: port %d", i, ev.Port)
			}
			if want := uint16(first + i%ports); dropped == 0 && ev.Port != want {
				t.Fatalf("event %d: port %d, want %d: out of order", i, ev.Port, want)
			}
		}
	}
	t.Run("headers kept", func(t *testing.T) {
		// A frame keeps 176 bytes of the packet: a TCP header behind
		// 120 bytes of IPv6 extension headers is seen, one behind 128
		// is cut short.
		p, h := e.peer6.String(), e.host6.String()
		destOpts := func(n int) []byte {
			b := make([]byte, n)
			b[0], b[1], b[2], b[3] = protoTCP, byte(n/8-1), 1, byte(n-4) // PadN
			return b
		}
		r.mark(t, e.udp, e.host6)
		before := r.src.Stats()
		e.raw(ip6(p, h, 60, destOpts(120), tcpHdr(8, portSyn, wire.SYN)))
		e.raw(ip6(p, h, 60, destOpts(128), tcpHdr(9, portSyn, wire.SYN)))
		got := r.mark(t, e.udp, e.host6)
		sameEvents(t, "IPv6 with long extension headers", got, []capture.Event{
			{Src: e.peer6, Dst: e.host6, Port: portSyn, Proto: wire.TCP, Flags: wire.SYN},
		})
		if n := r.src.Stats().Malformed - before.Malformed; n != 1 {
			t.Errorf("%d malformed, want 1", n)
		}
	})
	t.Run("reader keeps up", func(t *testing.T) { burst(t, false) })
	t.Run("reader held up", func(t *testing.T) { burst(t, true) })
	// The ring still delivers afterwards.
	r.mark(t, e.udp, e.host4)
}

// TestLiveClosedDuringFlood stops watching an interface while a flood
// keeps its socket's ring full: the closed socket must stop delivering
// at once, not when the flood ends.
func TestLiveClosedDuringFlood(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnv(t)
	e.createVeth()
	r := startSource(t, liveSpec([]string{e.host, "lo"}))
	r.mark(t, e.udp, e.host4)

	// A bounded flood: at most 300,000 datagrams or 3 s. An unconnected
	// socket, so that the host's port unreachable replies do not turn
	// writes into errors.
	stop := make(chan struct{})
	var sent atomic.Int64
	flooding := make(chan error, 1)
	go func() {
		flooding <- e.ns.Do(func() error {
			c, err := net.ListenPacket("udp4", "")
			if err != nil {
				return err
			}
			defer c.Close()
			dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.host4, portUDP))
			end := time.Now().Add(3 * time.Second)
			for i := 0; i < 300_000 && time.Now().Before(end); i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				if _, err := c.WriteTo([]byte("x"), dst); err == nil {
					sent.Add(1)
				}
			}
			return nil
		})
	}()
	defer func() {
		close(stop)
		if err := <-flooding; err != nil {
			t.Error(err)
		}
	}()
	// Let the flood fill the batches on their way and the ring while
	// nothing is read: the kernel drops packets once the ring is full,
	// and the reader then waits to hand a batch over.
	for end := time.Now().Add(3 * time.Second); r.src.Stats().Dropped == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Skipf("the ring did not fill in 3 s (%d datagrams sent)", sent.Load())
		}
	}
	if err := r.src.Update(liveSpec([]string{"lo"})); err != nil {
		t.Fatal(err)
	}
	// What was handed over before the close may still come: at most
	// the run's batches (16 × 256) and what the test holds. Then
	// nothing more from the veth.
	const handedOver = 16*256 + 2*100
	var fromPeer int
	deadline := time.After(time.Second)
	for done := false; !done; {
		select {
		case ev := <-r.events:
			if ev.Src == e.peer4 {
				fromPeer++
			}
		case <-deadline:
			done = true
		}
	}
	t.Logf("%d events from the closed socket after Update; %d datagrams sent by then", fromPeer, sent.Load())
	if fromPeer > handedOver {
		t.Errorf("%d events from the veth after it stopped being watched, want at most %d", fromPeer, handedOver)
	}
}

package netlab_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// listenTCP opens a TCP listener in ns on addr (port chosen by the
// kernel) that accepts and closes connections until the test ends.
func listenTCP(t *testing.T, ns *netlab.Netns, addr netip.Addr) netip.AddrPort {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

// connectTime dials dst from ns and returns how long the handshake took.
func connectTime(t *testing.T, ns *netlab.Netns, dst netip.AddrPort) time.Duration {
	t.Helper()
	var took time.Duration
	if err := ns.Do(func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp", dst.String(), 5*time.Second)
		took = time.Since(start)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		t.Fatalf("connecting from %s to %v: %v", ns, dst, err)
	}
	return took
}

func TestNetns(t *testing.T) {
	t.Parallel()
	ns := netlab.NewNetns(t, "nltest")
	if !strings.HasPrefix(ns.Name(), "nltest-") {
		t.Errorf("name %q does not start with the prefix", ns.Name())
	}
	// Run goes through ip netns exec; Do through setns: both see only
	// the namespace's loopback, and it is up.
	out := ns.Run(t, "ip", "-o", "link", "show")
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "lo:") || !strings.Contains(out, "UP") {
		t.Errorf("ip link in a new namespace:\n%s", out)
	}
	var names []string
	if err := ns.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != "[lo]" {
		t.Errorf("interfaces seen by Do: %v, want [lo]", names)
	}
	want := errors.New("from f")
	if err := ns.Do(func() error { return want }); err != want {
		t.Errorf("Do returned %v, want f's error", err)
	}
	// Loopback inside works.
	dst := listenTCP(t, ns, netip.MustParseAddr("127.0.0.1"))
	connectTime(t, ns, dst)
}

func TestVeth(t *testing.T) {
	t.Parallel()
	a, b := netlab.NewNetns(t, "nltest-a"), netlab.NewNetns(t, "nltest-b")
	v := netlab.NewVeth(t, a, b, netlab.Addressing{})
	if v.A.Dev != "veth0" || v.B.Dev != "veth0" {
		t.Errorf("devices %s, %s; want veth0 in each namespace", v.A.Dev, v.B.Dev)
	}
	for _, c := range []struct {
		from, to netlab.Endpoint
		addr     netip.Addr
	}{{v.A, v.B, v.B.Addr}, {v.B, v.A, v.A.Addr}, {v.A, v.B, v.B.Addr6}, {v.B, v.A, v.A.Addr6}} {
		dst := listenTCP(t, c.to.NS, c.addr)
		t.Logf("%s -> %v: %v", c.from.NS, dst, connectTime(t, c.from.NS, dst))
	}
	// A second pair between the same namespaces gets new names.
	w := netlab.NewVeth(t, a, b, netlab.Addressing{
		A: netip.MustParseAddr("198.18.1.1"), B: netip.MustParseAddr("198.18.1.2"), NoIPv6: true,
	})
	if w.A.Dev != "veth1" || w.B.Addr6.IsValid() {
		t.Errorf("second pair: %+v", w)
	}
	connectTime(t, w.A.NS, listenTCP(t, b, w.B.Addr))
}

func TestDelayLink(t *testing.T) {
	t.Parallel()
	const delay = 20 * time.Millisecond
	a, b := netlab.NewNetns(t, "nltest-a"), netlab.NewNetns(t, "nltest-b")
	l := netlab.NewDelayLink(t, a, b, netlab.DelayConfig{Delay: delay})
	if l.A.Dev != "tun0" || l.A.Addr.String() != "198.18.0.1" || l.B.Addr6.String() != "2001:db8::2" {
		t.Errorf("link: %+v %+v", l.A, l.B)
	}

	// A TCP handshake takes a round trip: at least twice the delay, both
	// ways, over IPv4 and IPv6.
	for _, c := range []struct {
		from, to netlab.Endpoint
		addr     netip.Addr
	}{{l.A, l.B, l.B.Addr}, {l.B, l.A, l.A.Addr}, {l.A, l.B, l.B.Addr6}, {l.B, l.A, l.A.Addr6}} {
		dst := listenTCP(t, c.to.NS, c.addr)
		rtt := connectTime(t, c.from.NS, dst)
		t.Logf("TCP connect %s -> %v: %v", c.from.NS, dst, rtt)
		if rtt < 2*delay {
			t.Errorf("TCP connect %s -> %v took %v, want >= %v", c.from.NS, dst, rtt, 2*delay)
		}
		if rtt > 2*delay+time.Second {
			t.Errorf("TCP connect %s -> %v took %v, far more than %v", c.from.NS, dst, rtt, 2*delay)
		}
	}
	st := l.Stats()
	t.Logf("stats after the connects: %+v", st)
	// Each connect: SYN, ACK, FIN/RST one way; SYN-ACK and more back.
	if st.AToB.Forwarded < 4 || st.BToA.Forwarded < 4 {
		t.Errorf("stats %+v: want at least 4 packets each way", st)
	}

	// A burst keeps its order and loses nothing, and a one-way trip
	// takes the delay.
	const n = 300
	var got []uint32
	var first time.Duration
	recv := listenUDP(t, b, l.B.Addr)
	send := dialUDP(t, a, recv.LocalAddr().String())
	start := time.Now()
	for i := range n {
		var buf [4]byte
		binary.BigEndian.PutUint32(buf[:], uint32(i))
		if _, err := send.Write(buf[:]); err != nil {
			t.Fatal(err)
		}
	}
	recv.SetReadDeadline(time.Now().Add(3 * time.Second))
	for len(got) < n {
		var buf [16]byte
		k, err := recv.Read(buf[:])
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		if len(got) == 0 {
			first = time.Since(start)
		}
		got = append(got, binary.BigEndian.Uint32(buf[:k]))
	}
	for i, v := range got {
		if v != uint32(i) {
			t.Fatalf("datagram %d is number %d: order not kept", i, v)
		}
	}
	t.Logf("first of %d datagrams after %v", n, first)
	if first < delay {
		t.Errorf("first datagram after %v, want >= %v", first, delay)
	}
	if st := l.Stats(); st.AToB.Lost+st.AToB.Dropped+st.BToA.Lost+st.BToA.Dropped != 0 {
		t.Errorf("stats %+v: packets lost without Loss", st)
	}

	// Close stops the relay: nothing gets through afterwards, and a
	// second Close is harmless.
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if out, err := exec.Command("ip", "-n", a.Name(), "link", "show", l.A.Dev).CombinedOutput(); err == nil {
		t.Errorf("%s still exists after Close:\n%s", l.A.Dev, out)
	}
	before := l.Stats()
	if err := a.Do(func() error {
		_, err := net.DialTimeout("tcp", netip.AddrPortFrom(l.B.Addr, 9).String(), 200*time.Millisecond)
		return err
	}); err == nil {
		t.Errorf("connected after Close")
	}
	if after := l.Stats(); after != before {
		t.Errorf("stats changed after Close: %+v, then %+v", before, after)
	}
}

func TestDelayLinkLoss(t *testing.T) {
	t.Parallel()
	a, b := netlab.NewNetns(t, "nltest-a"), netlab.NewNetns(t, "nltest-b")
	l := netlab.NewDelayLink(t, a, b, netlab.DelayConfig{Delay: time.Millisecond, Loss: 0.5, Addressing: netlab.Addressing{NoIPv6: true}})
	recv := listenUDP(t, b, l.B.Addr)
	send := dialUDP(t, a, recv.LocalAddr().String())
	const n = 200
	for range n {
		send.Write([]byte{0})
	}
	got := 0
	recv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		var buf [16]byte
		if _, err := recv.Read(buf[:]); err != nil {
			break
		}
		got++
	}
	st := l.Stats()
	t.Logf("%d of %d datagrams arrived; stats %+v", got, n, st)
	// The chance of any of these failing by bad luck is below 1e-12.
	if got < n/4 || got > 3*n/4 || st.AToB.Lost < n/4 || uint64(got)+st.AToB.Lost != n {
		t.Errorf("%d of %d datagrams arrived with Loss 0.5; stats %+v", got, n, st)
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	netlab.Require(t)
	var name string
	t.Run("inner", func(t *testing.T) {
		a, b := netlab.NewNetns(t, "nltest-a"), netlab.NewNetns(t, "nltest-b")
		netlab.NewDelayLink(t, a, b, netlab.DelayConfig{Delay: time.Millisecond})
		name = a.Name()
		if _, err := os.Stat("/var/run/netns/" + name); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat("/var/run/netns/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still there after its test: %v", name, err)
	}
}

func listenUDP(t *testing.T, ns *netlab.Netns, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err == nil {
			err = c.SetReadBuffer(1 << 20)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialUDP(t *testing.T, ns *netlab.Netns, dst string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) {
		c, err = net.Dial("udp", dst)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// linkExists reports whether dev is a device in ns.
func linkExists(ns *netlab.Netns, dev string) bool {
	_, err := ns.TryIP("link", "show", "dev", dev)
	return err == nil
}

func TestVethWith(t *testing.T) {
	t.Parallel()
	a, b := netlab.NewNetns(t, "nltest-a"), netlab.NewNetns(t, "nltest-b")
	cfg := netlab.VethConfig{AName: "left", BName: "right", Addressing: netlab.Addressing{NoIPv6: true}}
	t.Run("named, deleted and made again", func(t *testing.T) {
		v := netlab.NewVethWith(t, a, b, cfg)
		if v.A.Dev != "left" || v.B.Dev != "right" {
			t.Errorf("devices %s, %s; want left, right", v.A.Dev, v.B.Dev)
		}
		connectTime(t, a, listenTCP(t, b, v.B.Addr))
		v.Delete(t)
		if linkExists(a, "left") || linkExists(b, "right") {
			t.Fatal("the pair is still there after Delete")
		}
		v = netlab.NewVethWith(t, a, b, cfg)
		connectTime(t, b, listenTCP(t, a, v.A.Addr))
	})
	// The namespaces outlive the subtest; the pair does not.
	if linkExists(a, "left") || linkExists(b, "right") {
		t.Error("the pair is still there after its test")
	}

	var bridge string
	t.Run("bridged", func(t *testing.T) {
		br := netlab.NewBridge(t, a, "")
		bridge = br
		cfg := cfg
		cfg.Bridge = br
		cfg.NoIPv6 = false
		v := netlab.NewVethWith(t, a, b, cfg)
		out := a.IP(t, "-o", "addr", "show", "dev", br)
		if !strings.Contains(out, v.A.Addr.String()) || !strings.Contains(out, v.A.Addr6.String()) {
			t.Errorf("the bridge %s does not hold A's addresses:\n%s", br, out)
		}
		if out := a.IP(t, "-o", "link", "show", "dev", v.A.Dev); !strings.Contains(out, "master "+br) {
			t.Errorf("%s is not a port of %s:\n%s", v.A.Dev, br, out)
		}
		if out := a.IP(t, "-o", "addr", "show", "dev", v.A.Dev); strings.Contains(out, "inet") {
			t.Errorf("the bridge port %s has addresses of its own:\n%s", v.A.Dev, out)
		}
		for _, c := range []struct {
			from, to *netlab.Netns
			addr     netip.Addr
		}{{a, b, v.B.Addr}, {b, a, v.A.Addr}, {a, b, v.B.Addr6}, {b, a, v.A.Addr6}} {
			connectTime(t, c.from, listenTCP(t, c.to, c.addr))
		}

		var vlan *netlab.VLAN
		t.Run("VLAN", func(t *testing.T) {
			l := netlab.NewVLAN(t, netlab.Endpoint{NS: a, Dev: br}, v.B, 10, netlab.Addressing{
				A: netip.MustParseAddr("198.19.0.1"), B: netip.MustParseAddr("198.19.0.2"), NoIPv6: true,
			})
			vlan = l
			connectTime(t, b, listenTCP(t, a, l.A.Addr))
		})
		if vlan != nil && (linkExists(a, vlan.A.Dev) || linkExists(b, vlan.B.Dev)) {
			t.Error("a VLAN device is still there after its test")
		}
	})
	if bridge != "" && linkExists(a, bridge) || linkExists(a, "left") {
		t.Error("the bridge or its port is still there after its test")
	}
}

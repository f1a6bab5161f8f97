package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/capture/capturetest"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// timeout bounds every wait; reaching it means a failure, never a pass.
const timeout = 10 * time.Second

// orderedHold is the Hold of tests that check the order of knocks read
// by different sockets: long, so that a loaded test machine (-race, many
// parallel tests) does not fail them.
const orderedHold = 200 * time.Millisecond

func TestMain(m *testing.M) {
	// Linux timestamps packets on arrival only while some socket asks
	// for timestamps, and turns that on a moment after the first one
	// does. Parallel tests open and close their sockets all the time;
	// this socket keeps timestamps on, as the daemon's sockets do.
	if c, err := listenUDP("udp4", "127.0.0.1:0"); err == nil {
		defer c.Close()
	}
	m.Run()
}

var (
	lo4   = netip.MustParseAddr("127.0.0.1")
	lo4b  = netip.MustParseAddr("127.0.0.2") // local on Linux, where all of 127/8 is
	lo4c  = netip.MustParseAddr("127.0.0.3")
	lo6   = netip.MustParseAddr("::1")
	notMe = netip.MustParseAddr("198.51.100.7") // TEST-NET-2
)

// needLinux skips tests that knock from or to 127.0.0.2 and 127.0.0.3,
// which are local on Linux, where all of 127/8 is, or that need the Linux
// accept loop's ordering.
func needLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux: all of 127/8 local, and the epoll accept loop")
	}
}

var eventOpts = cmp.Options{
	cmpopts.IgnoreFields(capture.Event{}, "Time"),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

var hasIPv6 = sync.OnceValue(func() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
})

// freePort returns a port that was free for TCP and UDP on both families
// a moment ago. Another test may take it meanwhile, so callers retry.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(p)); err == nil {
			pc.Close()
			return uint16(p)
		}
	}
	t.Fatal("no free port")
	return 0
}

// newSource creates a Source for the spec that mk builds from n free
// ports, trying other ports when one was taken meanwhile.
func newSource(t *testing.T, n int, opts Options, mk func(p []uint16) capture.Spec) (*Source, []uint16) {
	t.Helper()
	for range 20 {
		ports := make([]uint16, n)
		for i := range ports {
			ports[i] = freePort(t)
		}
		s, err := New(mk(ports), opts)
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, ports
	}
	t.Fatal("ports kept being taken")
	return nil, nil
}

// run runs s until the test ends, and checks that Run then returns nil.
func run(t *testing.T, s *Source) <-chan capture.Event {
	t.Helper()
	out := make(chan capture.Event, 1024)
	batches := make(chan *capture.Batch, 16)
	go capturetest.Flatten(batches, out)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, batches) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(timeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	return out
}

func port(proto wire.Proto, p uint16, doors ...string) capture.Port {
	return capture.Port{Proto: proto, Port: p, Doors: doors}
}

func targeted(proto wire.Proto, p uint16, targets ...netip.Addr) capture.Port {
	return capture.Port{Proto: proto, Port: p, Targets: targets, Doors: []string{"d"}}
}

// next returns the next event, failing the test after timeout.
func next(t *testing.T, out <-chan capture.Event) capture.Event {
	t.Helper()
	select {
	case ev := <-out:
		return ev
	case <-time.After(timeout):
		t.Fatal("no event")
		return capture.Event{}
	}
}

// expect reads len(want) events and compares them, Time aside.
func expect(t *testing.T, out <-chan capture.Event, want ...capture.Event) {
	t.Helper()
	var got []capture.Event
	for range want {
		got = append(got, next(t, out))
	}
	if diff := cmp.Diff(want, got, eventOpts); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func tcpEv(src, dst netip.Addr, p uint16) capture.Event {
	return capture.Event{Src: src, Dst: dst, Port: p, Proto: wire.TCP, Flags: wire.SYN}
}

func udpEv(src, dst netip.Addr, p uint16) capture.Event {
	return capture.Event{Src: src, Dst: dst, Port: p, Proto: wire.UDP}
}

// knockTCP connects from src (any address if invalid) to dst:p. It
// returns nil when the listener accepted and reset the connection, and
// the error otherwise (ECONNREFUSED when nothing listens).
func knockTCP(src, dst netip.Addr, p uint16) error {
	d := net.Dialer{Timeout: timeout}
	if src.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := d.Dial("tcp", netip.AddrPortFrom(dst, p).String())
	if errors.Is(err, syscall.ECONNRESET) {
		return nil // reset before connect returned
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(timeout))
	_, err = c.Read(make([]byte, 1))
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return fmt.Errorf("connection was not reset: read returned %v", err)
}

func knockUDP(t *testing.T, src, dst netip.Addr, p uint16) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort([]byte("knock"), netip.AddrPortFrom(dst, p)); err != nil {
		t.Fatal(err)
	}
}

func TestName(t *testing.T) {
	t.Parallel()
	var src capture.Source = &Source{}
	if got := src.Name(); got != "listener" {
		t.Errorf("Name() = %q", got)
	}
}

func TestTCPKnock(t *testing.T) {
	t.Parallel()
	needLinux(t)
	var lines []string
	var mu sync.Mutex
	logf := func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, args...))
	}
	s, p := newSource(t, 1, Options{Logf: logf}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.TCP, p[0], "openSSH")}}
	})
	out := run(t, s)

	before := time.Now()
	if err := knockTCP(lo4, lo4, p[0]); err != nil {
		t.Fatal(err)
	}
	ev := next(t, out)
	if diff := cmp.Diff(tcpEv(lo4, lo4, p[0]), ev, eventOpts); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if ev.Time.Before(before) || ev.Time.After(time.Now()) {
		t.Errorf("event time %v is not within the knock", ev.Time)
	}
	// A knock from another source comes next: the first knock made
	// exactly one event.
	if err := knockTCP(lo4b, lo4, p[0]); err != nil {
		t.Fatal(err)
	}
	expect(t, out, tcpEv(lo4b, lo4, p[0]))
	if hasIPv6() {
		if err := knockTCP(lo6, lo6, p[0]); err != nil {
			t.Fatal(err)
		}
		expect(t, out, tcpEv(lo6, lo6, p[0]))
	}
	if st := s.Stats(); st.Accepted < 2 || st.Dropped != 0 {
		t.Errorf("Stats() = %+v", st)
	}

	mu.Lock()
	log := strings.Join(lines, "\n")
	mu.Unlock()
	if want := fmt.Sprintf("listener: listening on tcp 0.0.0.0:%d for door openSSH", p[0]); !strings.Contains(log, want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
}

func TestUDPKnock(t *testing.T) {
	t.Parallel()
	needLinux(t)
	s, p := newSource(t, 1, Options{Hold: orderedHold}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.UDP, p[0], "d")}}
	})
	out := run(t, s)

	// The socket is bound to the wildcard; Dst says which address each
	// datagram was sent to.
	knockUDP(t, lo4, lo4, p[0])
	knockUDP(t, lo4, lo4, p[0])
	knockUDP(t, lo4, lo4, p[0])
	knockUDP(t, lo4c, lo4b, p[0])
	want := []capture.Event{
		udpEv(lo4, lo4, p[0]),
		udpEv(lo4, lo4, p[0]),
		udpEv(lo4, lo4, p[0]),
		udpEv(lo4c, lo4b, p[0]),
	}
	if hasIPv6() {
		knockUDP(t, lo6, lo6, p[0])
		want = append(want, udpEv(lo6, lo6, p[0]))
	}
	// Then a marker from yet another source: no extra event came before it.
	knockUDP(t, lo4b, lo4, p[0])
	want = append(want, udpEv(lo4b, lo4, p[0]))
	expect(t, out, want...)
	if st := s.Stats(); st.Received != uint64(len(want)) {
		t.Errorf("Stats().Received = %d, want %d", st.Received, len(want))
	}
}

func TestTargets(t *testing.T) {
	t.Parallel()
	needLinux(t)
	s, p := newSource(t, 2, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{
			targeted(wire.TCP, p[0], lo4),
			targeted(wire.UDP, p[1], lo4),
		}}
	})
	out := run(t, s)

	if err := knockTCP(lo4, lo4b, p[0]); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("knock on 127.0.0.2: %v, want connection refused", err)
	}
	if hasIPv6() {
		if err := knockTCP(lo6, lo6, p[0]); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("knock on ::1: %v, want connection refused", err)
		}
		knockUDP(t, lo6, lo6, p[1])
	}
	knockUDP(t, lo4, lo4b, p[1])
	if err := knockTCP(lo4, lo4, p[0]); err != nil {
		t.Fatal(err)
	}
	expect(t, out, tcpEv(lo4, lo4, p[0]))
	knockUDP(t, lo4c, lo4, p[1])
	expect(t, out, udpEv(lo4c, lo4, p[1]))
}

func TestIPv4Only(t *testing.T) {
	t.Parallel()
	needLinux(t)
	if !hasIPv6() {
		t.Skip("no IPv6 on this host")
	}
	s, p := newSource(t, 1, Options{Hold: orderedHold}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{
			port(wire.TCP, p[0], "d"),
			{Proto: wire.UDP, Port: p[0], Targets: []netip.Addr{lo4, lo6}},
		}, IPv4Only: true}
	})
	out := run(t, s)
	if err := knockTCP(lo6, lo6, p[0]); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("knock on ::1: %v, want connection refused", err)
	}
	knockUDP(t, lo6, lo6, p[0])
	if err := knockTCP(lo4, lo4, p[0]); err != nil {
		t.Fatal(err)
	}
	knockUDP(t, lo4b, lo4, p[0])
	expect(t, out, tcpEv(lo4, lo4, p[0]), udpEv(lo4b, lo4, p[0]))
}

func loopback(t *testing.T) net.Interface {
	t.Helper()
	ifis, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifis {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagUp != 0 {
			return ifi
		}
	}
	t.Skip("no loopback interface")
	return net.Interface{}
}

// otherAddr returns an IPv4 address of this host that is not on the
// loopback interface.
func otherAddr() (netip.Addr, bool) {
	ifis, _ := net.Interfaces()
	for _, ifi := range ifis {
		if ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagUp == 0 {
			continue
		}
		ias, _ := ifi.Addrs()
		for _, ia := range ias {
			if ipn, ok := ia.(*net.IPNet); ok {
				if a, ok := netip.AddrFromSlice(ipn.IP); ok && a.Unmap().Is4() {
					return a.Unmap(), true
				}
			}
		}
	}
	return netip.Addr{}, false
}

func TestInterface(t *testing.T) {
	t.Parallel()
	needLinux(t)
	lo := loopback(t)
	s, p := newSource(t, 1, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.TCP, p[0], "d")}, Interfaces: []string{lo.Name}}
	})
	out := run(t, s)
	// Bound to lo's addresses (127.0.0.1, ::1), not to 127/8 nor to the
	// other interfaces.
	if err := knockTCP(lo4, lo4b, p[0]); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("knock on 127.0.0.2: %v, want connection refused", err)
	}
	if other, ok := otherAddr(); ok {
		if err := knockTCP(other, other, p[0]); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("knock on %v: %v, want connection refused", other, err)
		}
	}
	if err := knockTCP(lo4, lo4, p[0]); err != nil {
		t.Fatal(err)
	}
	expect(t, out, tcpEv(lo4, lo4, p[0]))
	if hasIPv6() {
		if err := knockTCP(lo6, lo6, p[0]); err != nil {
			t.Fatal(err)
		}
		expect(t, out, tcpEv(lo6, lo6, p[0]))
	}
}

func TestUnknownInterface(t *testing.T) {
	t.Parallel()
	lo := loopback(t)
	_, err := New(capture.Spec{
		Ports:      []capture.Port{port(wire.TCP, freePort(t), "d")},
		Interfaces: []string{lo.Name, "nosuch0"},
	}, Options{})
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, want := range []string{`interface "nosuch0" does not exist`, lo.Name, "-i/--interface"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	for _, proto := range []wire.Proto{wire.TCP, wire.UDP} {
		t.Run(proto.String(), func(t *testing.T) {
			t.Parallel()
			var p uint16
			var holder interface{ Close() error }
			for holder == nil {
				p = freePort(t)
				var err error
				if proto == wire.TCP {
					holder, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", p))
				} else {
					holder, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", p))
				}
				if err != nil {
					holder = nil
				}
			}
			defer holder.Close()
			_, err := New(capture.Spec{Ports: []capture.Port{port(proto, p, "openSSH")}}, Options{})
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("New: %v, want EADDRINUSE", err)
			}
			want := fmt.Sprintf("listener: door openSSH: %s port %d on 0.0.0.0 is already in use by another program; free it, or choose another port, or use --backend raw", proto, p)
			if err.Error() != want {
				t.Errorf("error:\n%s\nwant:\n%s", err, want)
			}
			var oe *OpenError
			if !errors.As(err, &oe) || oe.Port != p || oe.Proto != proto || oe.Addr != netip.IPv4Unspecified() {
				t.Errorf("errors.As(*OpenError) = %+v", oe)
			}
		})
	}
}

// A failed New closes what it had opened.
func TestNewFailureClosesAll(t *testing.T) {
	t.Parallel()
	for range 20 {
		free, busy := freePort(t), freePort(t)
		holder, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", busy))
		if err != nil {
			continue
		}
		defer holder.Close()
		// TCP sorts first: its sockets are open when UDP fails.
		_, err = New(capture.Spec{Ports: []capture.Port{
			port(wire.TCP, free, "a"),
			port(wire.UDP, busy, "b"),
		}}, Options{})
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("New: %v, want EADDRINUSE", err)
		}
		if !strings.Contains(err.Error(), "door b: udp port") {
			t.Errorf("error %q does not name door b", err)
		}
		checkFree(t, wire.TCP, free)
		return
	}
	t.Fatal("ports kept being taken")
}

// checkFree checks that nothing of ours holds port p any more.
func checkFree(t *testing.T, proto wire.Proto, p uint16) {
	t.Helper()
	nets := []string{"4"}
	if hasIPv6() {
		nets = append(nets, "6")
	}
	for _, fam := range nets {
		network := proto.String() + fam
		addr := fmt.Sprintf("0.0.0.0:%d", p)
		if fam == "6" {
			addr = fmt.Sprintf("[::]:%d", p)
		}
		var c interface{ Close() error }
		var err error
		if proto == wire.TCP {
			c, err = net.Listen(network, addr)
		} else {
			c, err = net.ListenPacket(network, addr)
		}
		if err != nil {
			t.Errorf("port still held: %v", err)
			continue
		}
		c.Close()
	}
}

func TestAddressNotHere(t *testing.T) {
	t.Parallel()
	_, err := New(capture.Spec{Ports: []capture.Port{{
		Proto: wire.TCP, Port: freePort(t), Targets: []netip.Addr{notMe}, Doors: []string{"router"},
	}}}, Options{})
	if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("New: %v, want EADDRNOTAVAIL", err)
	}
	for _, want := range []string{"door router", "198.51.100.7 is not an address of this host", "Target", "--backend raw"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// The message for each error a bind can give.
func TestOpenErrorMessages(t *testing.T) {
	t.Parallel()
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp4", Err: os.NewSyscallError("bind", errno)}
	}
	exe, _ := os.Executable()
	for _, tc := range []struct {
		name string
		err  *OpenError
		want string
		is   error
	}{{
		name: "in use",
		err:  &OpenError{Doors: []string{"a", "b"}, Proto: wire.UDP, Port: 7000, Addr: netip.IPv6Unspecified(), Err: opErr(syscall.EADDRINUSE)},
		want: "listener: doors a, b: udp port 7000 on [::] is already in use by another program; free it, or choose another port, or use --backend raw",
		is:   syscall.EADDRINUSE,
	}, {
		name: "low port",
		err:  &OpenError{Doors: []string{"openSSH"}, Proto: wire.TCP, Port: 22, Addr: netip.IPv4Unspecified(), Err: opErr(syscall.EACCES)},
		want: "listener: door openSSH: tcp port 22 on 0.0.0.0: permission denied: ports below 1024 need CAP_NET_BIND_SERVICE; run `setcap cap_net_bind_service+ep " + exe + "`, or run as root, or choose a port above 1023, or use --backend raw",
		is:   os.ErrPermission,
	}, {
		name: "high port",
		err:  &OpenError{Doors: []string{"d"}, Proto: wire.TCP, Port: 7000, Addr: lo4, Err: opErr(syscall.EACCES)},
		want: "listener: door d: tcp port 7000 on 127.0.0.1: permission denied (listen tcp4: bind: permission denied); check net.ipv4.ip_unprivileged_port_start and the security policy, or use --backend raw",
		is:   os.ErrPermission,
	}, {
		name: "not here",
		err:  &OpenError{Doors: []string{"d"}, Proto: wire.TCP, Port: 7000, Addr: notMe, Err: opErr(syscall.EADDRNOTAVAIL)},
		want: "listener: door d: tcp port 7000 on 198.51.100.7: 198.51.100.7 is not an address of this host; fix the door's Target (or the interface's address), or use --backend raw, which also sees knocks to addresses the host does not own",
		is:   syscall.EADDRNOTAVAIL,
	}, {
		name: "other",
		err:  &OpenError{Proto: wire.TCP, Port: 7000, Addr: lo4, Err: opErr(syscall.EMFILE)},
		want: "listener: tcp port 7000 on 127.0.0.1: listen tcp4: bind: too many open files",
		is:   syscall.EMFILE,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error():\n%s\nwant:\n%s", got, tc.want)
			}
			if !errors.Is(tc.err, tc.is) {
				t.Errorf("errors.Is(err, %v) = false", tc.is)
			}
		})
	}
}

// waitFor reads events until one satisfies ok, skipping others.
func waitFor(t *testing.T, out <-chan capture.Event, ok func(capture.Event) bool) capture.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-out:
			if ok(ev) {
				return ev
			}
		case <-deadline:
			t.Fatal("no matching event")
			return capture.Event{}
		}
	}
}

// socksOf returns the open sockets of s by key.
func socksOf(s *Source) map[key]*sock {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[key]*sock{}
	for k, v := range s.socks {
		m[k] = v
	}
	return m
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	needLinux(t)
	s, p := newSource(t, 3, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.TCP, p[0], "a"), port(wire.TCP, p[1], "b")}}
	})
	a, b, c := p[0], p[1], p[2]
	out := run(t, s)
	keep := key{wire.TCP, b, netip.IPv4Unspecified()}
	before := socksOf(s)[keep]

	// Knock on b throughout the update: it must never be refused.
	stop := make(chan struct{})
	refused := make(chan error, 1)
	var knocks sync.WaitGroup
	knocks.Add(1)
	go func() {
		defer knocks.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := knockTCP(lo4, lo4, b); err != nil {
				select {
				case refused <- err:
				default:
				}
				return
			}
		}
	}()
	// Let some knocks through before the update, so that the loop runs.
	waitFor(t, out, func(ev capture.Event) bool { return ev.Port == b })
	err := s.Update(capture.Spec{Ports: []capture.Port{port(wire.TCP, b, "b"), port(wire.UDP, c, "c")}})
	close(stop)
	knocks.Wait()
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	select {
	case err := <-refused:
		t.Errorf("a knock on the kept port failed during Update: %v", err)
	default:
	}
	if after := socksOf(s)[keep]; after != before || after == nil {
		t.Errorf("the socket of the kept port was replaced")
	}

	for k := range socksOf(s) {
		if k.port == a {
			t.Errorf("socket %v still open", k)
		}
	}
	// A knock on the removed port makes no event. (Not "connection
	// refused": once free, the port may go to another test.)
	knockTCP(lo4, lo4, a)
	knockUDP(t, lo4c, lo4, c)
	waitFor(t, out, func(ev capture.Event) bool {
		if ev.Port == a {
			t.Errorf("event on a removed port: %+v", ev)
		}
		return ev.Port == c && ev.Src == lo4c
	})
	if err := knockTCP(lo4b, lo4, b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, func(ev capture.Event) bool { return ev.Port == b && ev.Src == lo4b })
}

func TestUpdateFailureKeepsOld(t *testing.T) {
	t.Parallel()
	s, p := newSource(t, 3, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.TCP, p[0], "a")}}
	})
	a, added, busy := p[0], p[1], p[2]
	out := run(t, s)
	before := socksOf(s)

	holder, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", busy))
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	defer holder.Close()
	err = s.Update(capture.Spec{Ports: []capture.Port{port(wire.TCP, added, "new"), port(wire.UDP, busy, "busy")}})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "door busy") {
		t.Fatalf("Update: %v, want EADDRINUSE naming door busy", err)
	}
	if diff := cmp.Diff(before, socksOf(s), cmp.Comparer(func(a, b *sock) bool { return a == b })); diff != "" {
		t.Errorf("sockets changed (-before +after):\n%s", diff)
	}
	checkFree(t, wire.TCP, added)
	if err := knockTCP(lo4, lo4, a); err != nil {
		t.Fatal(err)
	}
	expect(t, out, tcpEv(lo4, lo4, a))
}

// A port that moves from the wildcard to a Target and back: the new
// socket conflicts with the old one, which must close first.
func TestUpdateMoveToTarget(t *testing.T) {
	t.Parallel()
	needLinux(t)
	for _, proto := range []wire.Proto{wire.TCP, wire.UDP} {
		t.Run(proto.String(), func(t *testing.T) {
			t.Parallel()
			wild := func(p uint16) capture.Spec { return capture.Spec{Ports: []capture.Port{port(proto, p, "d")}} }
			s, p := newSource(t, 1, Options{}, func(p []uint16) capture.Spec { return wild(p[0]) })
			out := run(t, s)
			knock := func(src, dst netip.Addr) error {
				if proto == wire.TCP {
					return knockTCP(src, dst, p[0])
				}
				knockUDP(t, src, dst, p[0])
				return nil
			}
			ev := func(src, dst netip.Addr) capture.Event {
				if proto == wire.TCP {
					return tcpEv(src, dst, p[0])
				}
				return udpEv(src, dst, p[0])
			}

			if err := s.Update(capture.Spec{Ports: []capture.Port{targeted(proto, p[0], lo4)}}); err != nil {
				t.Fatalf("Update to target: %v", err)
			}
			if err := knock(lo4, lo4b); proto == wire.TCP && !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("knock on 127.0.0.2: %v, want connection refused", err)
			}
			if err := knock(lo4c, lo4); err != nil {
				t.Fatal(err)
			}
			expect(t, out, ev(lo4c, lo4))

			// A target that is not here fails, and the source keeps
			// its socket.
			err := s.Update(capture.Spec{Ports: []capture.Port{targeted(proto, p[0], notMe)}})
			if !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Errorf("Update to a foreign target: %v, want EADDRNOTAVAIL", err)
			}

			if err := s.Update(wild(p[0])); err != nil {
				t.Fatalf("Update back to wildcard: %v", err)
			}
			if err := knock(lo4, lo4b); err != nil {
				t.Fatal(err)
			}
			expect(t, out, ev(lo4, lo4b))
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s, p := newSource(t, 1, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.TCP, p[0], "d"), port(wire.UDP, p[0], "d")}}
	})
	out := make(chan capture.Event, 8)
	batches := make(chan *capture.Batch, 8)
	go capturetest.Flatten(batches, out)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, batches) }()
	if err := knockTCP(lo4, lo4, p[0]); err != nil {
		t.Fatal(err)
	}
	next(t, out)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Run did not return")
	}
	checkFree(t, wire.TCP, p[0])
	checkFree(t, wire.UDP, p[0])
	if err := s.Update(capture.Spec{}); err == nil {
		t.Error("Update after Run returned: no error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Run(context.Background(), batches); err == nil {
		t.Error("Run after Close: no error")
	}
}

func TestCloseEndsRun(t *testing.T) {
	t.Parallel()
	s, p := newSource(t, 1, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.UDP, p[0], "d")}}
	})
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background(), make(chan *capture.Batch)) }()
	s.Close()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, errClosed) {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Run did not return after Close")
	}
	checkFree(t, wire.UDP, p[0])
}

// A consumer that stops reading holds knocks back, but cannot keep Run
// from returning.
func TestStalledConsumer(t *testing.T) {
	t.Parallel()
	s, p := newSource(t, 1, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{port(wire.UDP, p[0], "d"), port(wire.TCP, p[0], "d")}}
	})
	out := make(chan *capture.Batch) // nobody reads
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, out) }()
	knockUDP(t, lo4, lo4, p[0])
	knockUDP(t, lo4, lo4, p[0])
	if err := knockTCP(lo4, lo4, p[0]); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(timeout); s.Stats().Waited == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no knock waited for room: %+v", s.Stats())
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Run did not return")
	}
	if st := s.Stats(); st.Dropped != 3 || st.Received != 2 || st.Accepted != 1 {
		t.Errorf("Stats() = %+v, want 3 dropped of 2 received and 1 accepted", st)
	}
}

// Knocks on different ports leave in the order they came, although each
// socket has its own reader.
func TestOrder(t *testing.T) {
	t.Parallel()
	needLinux(t)
	const rounds = 100
	for _, proto := range []wire.Proto{wire.TCP, wire.UDP} {
		t.Run(proto.String(), func(t *testing.T) {
			t.Parallel()
			s, p := newSource(t, 3, Options{Hold: orderedHold}, func(p []uint16) capture.Spec {
				var spec capture.Spec
				for _, n := range p {
					spec.Ports = append(spec.Ports, targeted(proto, n, lo4))
				}
				return spec
			})
			out := run(t, s)
			// The first datagrams after SO_TIMESTAMPNS is first enabled
			// may lack a kernel timestamp: warm up.
			if proto == wire.UDP {
				knockUDP(t, lo4, lo4, p[0])
				next(t, out)
			}

			var want []uint16
			for range rounds {
				for _, n := range p {
					if proto == wire.TCP {
						if err := knockTCP(lo4, lo4, n); err != nil {
							t.Fatal(err)
						}
					} else {
						knockUDP(t, lo4, lo4, n)
					}
					want = append(want, n)
				}
			}
			var got []uint16
			var evs []capture.Event
			for range want {
				ev := next(t, out)
				evs = append(evs, ev)
				got = append(got, ev.Port)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("knock order (-want +got):\n%s", diff)
				for i, ev := range evs {
					if i > 0 && got[i] != want[i] {
						t.Logf("%d: want %d got %d %s %v", i, want[i], ev.Port, ev.Time.Format("15:04:05.000000000"), ev.Time.Sub(evs[i-1].Time))
					}
				}
			}
		})
	}
}

func TestUnsupported(t *testing.T) {
	t.Parallel()
	tcp := []wire.Knock{{Port: 7000, Proto: wire.TCP}, {Port: 8000, Proto: wire.UDP}}
	udp := []wire.Knock{{Port: 7000, Proto: wire.UDP}}
	for _, tc := range []struct {
		name  string
		door  config.Door
		wants bool
	}{
		{"no flags", config.Door{Sequence: tcp}, false},
		{"syn", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Set: wire.SYN}}, false},
		{"syn,!ack", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}}, false},
		{"!fin,!rst", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Unset: wire.FIN | wire.RST}}, false},
		{"ack", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Set: wire.ACK}}, true},
		{"syn,ack", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Set: wire.SYN | wire.ACK}}, true},
		{"fin", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Set: wire.FIN}}, true},
		{"rst", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Set: wire.RST}}, true},
		{"!syn", config.Door{Sequence: tcp, Flags: wire.FlagFilter{Unset: wire.SYN}}, true},
		{"ack, UDP only", config.Door{Sequence: udp, Flags: wire.FlagFilter{Set: wire.ACK}}, false},
		{"ack, one-time UDP", config.Door{Sequence: udp, OneTimeFile: "/etc/knock.seq", Flags: wire.FlagFilter{Set: wire.ACK}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Unsupported(&tc.door)
			if (got != "") != tc.wants {
				t.Errorf("Unsupported() = %q, want a reason: %v", got, tc.wants)
			}
			if got != "" && (!strings.Contains(got, tc.door.Flags.String()) || !strings.Contains(got, "--backend raw")) {
				t.Errorf("Unsupported() = %q: does not name the flags and the fix", got)
			}
		})
	}
}

// linkLocal returns an IPv6 link-local address of this host and its
// interface.
func linkLocal() (netip.Addr, string, bool) {
	ifis, _ := net.Interfaces()
	for _, ifi := range ifis {
		if ifi.Flags&net.FlagUp == 0 {
			continue
		}
		ias, _ := ifi.Addrs()
		for _, ia := range ias {
			if ipn, ok := ia.(*net.IPNet); ok {
				if a, ok := netip.AddrFromSlice(ipn.IP); ok && a.Is6() && a.IsLinkLocalUnicast() {
					return a, ifi.Name, true
				}
			}
		}
	}
	return netip.Addr{}, "", false
}

// A link-local Target needs its interface as zone to bind; events carry
// no zone.
func TestLinkLocalTarget(t *testing.T) {
	t.Parallel()
	ll, ifname, ok := linkLocal()
	if !ok {
		t.Skip("no IPv6 link-local address on this host")
	}
	s, p := newSource(t, 1, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{targeted(wire.TCP, p[0], ll), targeted(wire.UDP, p[0], ll)}}
	})
	out := run(t, s)
	zoned := ll.WithZone(ifname)
	if err := knockTCP(zoned, zoned, p[0]); err != nil {
		t.Fatal(err)
	}
	expect(t, out, tcpEv(ll, ll, p[0]))
	knockUDP(t, zoned, zoned, p[0])
	expect(t, out, udpEv(ll, ll, p[0]))
}

package knockcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/knock-go/knock/wire"
)

func TestParseKnock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		arg     string
		udp     bool
		want    wire.Knock
		wantErr string
	}{
		{arg: "7000", want: wire.Knock{Port: 7000, Proto: wire.TCP}},
		{arg: "07000", want: wire.Knock{Port: 7000, Proto: wire.TCP}},
		{arg: "1", want: wire.Knock{Port: 1, Proto: wire.TCP}},
		{arg: "65535", want: wire.Knock{Port: 65535, Proto: wire.TCP}},
		{arg: "7000:tcp", want: wire.Knock{Port: 7000, Proto: wire.TCP}},
		{arg: "7000:udp", want: wire.Knock{Port: 7000, Proto: wire.UDP}},
		{arg: "7000:UDP", want: wire.Knock{Port: 7000, Proto: wire.UDP}},
		{arg: "7000:Tcp", want: wire.Knock{Port: 7000, Proto: wire.TCP}},
		{arg: "7000", udp: true, want: wire.Knock{Port: 7000, Proto: wire.UDP}},
		{arg: "7000:tcp", udp: true, want: wire.Knock{Port: 7000, Proto: wire.UDP}},
		// Service names: Go knows these even without /etc/services.
		{arg: "ssh", want: wire.Knock{Port: 22, Proto: wire.TCP}},
		{arg: "http:tcp", want: wire.Knock{Port: 80, Proto: wire.TCP}},
		{arg: "domain:udp", want: wire.Knock{Port: 53, Proto: wire.UDP}},
		// ssh is a TCP service; like getaddrinfo for knock 0.8, the
		// other protocol's entry serves.
		{arg: "ssh:udp", want: wire.Knock{Port: 22, Proto: wire.UDP}},
		{arg: "ssh", udp: true, want: wire.Knock{Port: 22, Proto: wire.UDP}},

		{arg: "", wantErr: `knock: "": no port`},
		{arg: ":udp", wantErr: `knock: ":udp": no port`},
		{arg: "7000:", wantErr: `knock: "7000:": unknown protocol "" (want tcp or udp)`},
		{arg: "7000:foo", wantErr: `knock: "7000:foo": unknown protocol "foo" (want tcp or udp)`},
		{arg: "7000:udp:x", wantErr: `knock: "7000:udp:x": unknown protocol "udp:x" (want tcp or udp)`},
		{arg: "0", wantErr: `knock: "0": port out of range (want 1-65535)`},
		{arg: "65536", wantErr: `knock: "65536": port out of range (want 1-65535)`},
		{arg: "99999999999", wantErr: `knock: "99999999999": port out of range (want 1-65535)`},
		{arg: "0x10", wantErr: `knock: "0x10": unknown port or service name`},
		{arg: " 7000", wantErr: `knock: " 7000": unknown port or service name`},
		{arg: "-7000", wantErr: `knock: "-7000": unknown port or service name`},
		{arg: "no-such-service-xyz:udp", wantErr: `knock: "no-such-service-xyz:udp": unknown port or service name`},
	}
	for _, tt := range tests {
		got, err := ParseKnock(context.Background(), nil, tt.arg, tt.udp)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseKnock(%q, %v) error = %v, want %s", tt.arg, tt.udp, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseKnock(%q, %v): %v", tt.arg, tt.udp, err)
			continue
		}
		name, _, _ := strings.Cut(tt.arg, ":")
		want := Knock{Knock: tt.want, Name: name}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseKnock(%q, %v) (-want +got):\n%s", tt.arg, tt.udp, diff)
		}
	}
}

func TestParseMillis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f       func(string) (time.Duration, error)
		name, s string
		want    time.Duration
		wantErr string
	}{
		{ParseDelay, "delay", "0", 0, ""},
		{ParseDelay, "delay", "250", 250 * time.Millisecond, ""},
		{ParseDelay, "delay", "-5", 0, "error: delay cannot be negative"},
		{ParseDelay, "delay", "abc", 0, `knock: invalid delay "abc" (want a whole number of milliseconds)`},
		{ParseDelay, "delay", "", 0, `knock: invalid delay "" (want a whole number of milliseconds)`},
		{ParseDelay, "delay", "1.5", 0, `knock: invalid delay "1.5" (want a whole number of milliseconds)`},
		{ParseDelay, "delay", "99999999999", 0, `knock: invalid delay "99999999999" (want a whole number of milliseconds)`},
		{ParseTimeout, "timeout", "0", NoWait, ""},
		{ParseTimeout, "timeout", "1500", 1500 * time.Millisecond, ""},
		{ParseTimeout, "timeout", "-1", 0, "error: timeout cannot be negative"},
		{ParseTimeout, "timeout", "1s", 0, `knock: invalid timeout "1s" (want a whole number of milliseconds)`},
	}
	for _, tt := range tests {
		got, err := tt.f(tt.s)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parse %s %q: error = %v, want %s", tt.name, tt.s, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parse %s %q = %v, %v; want %v", tt.name, tt.s, got, err, tt.want)
		}
	}
}

// udpSock opens a UDP socket on addr ("127.0.0.1" or "::1"), skipping the
// test when the address does not exist here.
func udpSock(t *testing.T, addr string) (*net.UDPConn, uint16) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Skipf("no UDP on %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

func tcpListener(t *testing.T, addr string) (*net.TCPListener, uint16) {
	t.Helper()
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Skipf("no TCP on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l, l.Addr().(*net.TCPAddr).AddrPort().Port()
}

// closedPort returns a TCP port on addr that nobody listens on (one that
// was free a moment ago).
func closedPort(t *testing.T, addr string) uint16 {
	t.Helper()
	l, p := tcpListener(t, addr)
	l.Close()
	return p
}

func ports(ps ...any) []string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprint(p))
	}
	return s
}

func TestRunUDPOneDatagram(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			c, p := udpSock(t, addr)
			var results []Result
			opts := Options{Observe: func(r Result) { results = append(results, r) }}
			if err := Run(context.Background(), opts, addr, ports(fmt.Sprintf("%d:udp", p)), nil); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]byte{0}, buf[:n]); diff != "" {
				t.Errorf("datagram (-want +got):\n%s", diff)
			}
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, _, err := c.ReadFromUDPAddrPort(buf); err == nil {
				t.Errorf("a second datagram arrived: % x", buf[:n])
			}
			if len(results) != 1 || results[0].Outcome != Sent || results[0].Addr != netip.AddrPortFrom(netip.MustParseAddr(addr), p) {
				t.Errorf("results = %+v, want one Sent to %s port %d", results, addr, p)
			}
		})
	}
}

func TestRunTCPHandshake(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			l, p := tcpListener(t, addr)
			var results []Result
			opts := Options{Observe: func(r Result) { results = append(results, r) }}
			if err := Run(context.Background(), opts, addr, ports(p), nil); err != nil {
				t.Fatal(err)
			}
			if len(results) != 1 || results[0].Outcome != Connected {
				t.Fatalf("results = %+v, want one Connected", results)
			}
			// The handshake completed before Run returned: the connection
			// waits in the accept queue.
			l.SetDeadline(time.Now().Add(5 * time.Second))
			c, err := l.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// SO_LINGER 0: the client reset the connection, it did not
			// close it gracefully.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("read from the knock's connection: %v, want ECONNRESET", err)
			}
		})
	}
}

func TestRunRefused(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			p := closedPort(t, addr)
			var results []Result
			opts := Options{
				Timeout: time.Minute, // a refusal must not wait for it
				Observe: func(r Result) { results = append(results, r) },
			}
			start := time.Now()
			if err := Run(context.Background(), opts, addr, ports(p, p, p), nil); err != nil {
				t.Fatalf("knocking a closed port: %v", err)
			}
			if len(results) != 3 {
				t.Fatalf("got %d results, want 3", len(results))
			}
			for _, r := range results {
				if r.Outcome != Rejected || !errors.Is(r.Answer, syscall.ECONNREFUSED) {
					t.Errorf("result = %+v, want Rejected with ECONNREFUSED", r)
				}
			}
			if d := time.Since(start); d >= time.Minute {
				t.Errorf("took %v: a refused knock waited for the timeout", d)
			}
		})
	}
}

// arrivals records, in order, which socket received something.
type arrivals struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{}
}

func (a *arrivals) add(s string) {
	a.mu.Lock()
	a.got = append(a.got, s)
	a.mu.Unlock()
	a.ch <- struct{}{}
}

func (a *arrivals) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func TestRunOrder(t *testing.T) {
	t.Parallel()
	const addr = "127.0.0.1"
	a := &arrivals{ch: make(chan struct{}, 100)}
	var args, names []string
	for i := range 6 {
		name := fmt.Sprintf("knock%d", i)
		names = append(names, name)
		if i%2 == 0 {
			l, p := tcpListener(t, addr)
			args = append(args, fmt.Sprint(p))
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
					a.add(name)
				}
			}()
		} else {
			c, p := udpSock(t, addr)
			args = append(args, fmt.Sprintf("%d:udp", p))
			go func() {
				buf := make([]byte, 10)
				for {
					if _, _, err := c.ReadFrom(buf); err != nil {
						return
					}
					a.add(name)
				}
			}()
		}
	}
	// Each knock must have arrived, alone, before the next is sent: the
	// check runs between two knocks.
	i := 0
	opts := Options{Observe: func(r Result) {
		select {
		case <-a.ch:
		case <-time.After(5 * time.Second):
			t.Errorf("knock %d (%v) did not arrive", i, r.Knock)
		}
		if diff := cmp.Diff(names[:i+1], a.list()); diff != "" {
			t.Errorf("after knock %d, arrivals (-want +got):\n%s", i, diff)
		}
		i++
	}}
	if err := Run(context.Background(), opts, addr, args, nil); err != nil {
		t.Fatal(err)
	}
	if i != len(args) {
		t.Errorf("observed %d knocks, want %d", i, len(args))
	}
}

func TestRunVerbose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		udp  bool
	}{
		{"127.0.0.1", false},
		{"127.0.0.1", true},
		{"::1", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/udp=%v", tt.addr, tt.udp), func(t *testing.T) {
			t.Parallel()
			_, up := udpSock(t, tt.addr)
			_, tp := tcpListener(t, tt.addr)
			args := []string{fmt.Sprint(tp), fmt.Sprintf("%d:udp", up), fmt.Sprintf("0%d:TCP", tp)}
			var out bytes.Buffer
			if err := Run(context.Background(), Options{Verbose: true, UDP: tt.udp}, tt.addr, args, &out); err != nil {
				t.Fatal(err)
			}
			proto := "tcp"
			if tt.udp {
				proto = "udp"
			}
			want := fmt.Sprintf("hitting %[1]s %[2]s:%[3]d\nhitting udp %[2]s:%[4]d\nhitting %[1]s %[2]s:0%[3]d\n", proto, tt.addr, tp, up)
			if diff := cmp.Diff(want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunVerboseServiceName(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var got []Result
	opts := Options{Verbose: true, Timeout: NoWait, Observe: func(r Result) { got = append(got, r) }}
	if err := Run(context.Background(), opts, "127.0.0.1", []string{"ssh", "domain:udp"}, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("hitting tcp 127.0.0.1:ssh\nhitting udp 127.0.0.1:domain\n", out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:22"), netip.MustParseAddrPort("127.0.0.1:53")}
	if len(got) != 2 || got[0].Addr != want[0] || got[1].Addr != want[1] {
		t.Errorf("knocked %+v, want %v", got, want)
	}
}

func TestRunDelay(t *testing.T) {
	t.Parallel()
	_, p := udpSock(t, "127.0.0.1")
	const delay = 100 * time.Millisecond
	var times []time.Time
	opts := Options{UDP: true, Delay: delay, Observe: func(Result) { times = append(times, time.Now()) }}
	start := time.Now()
	if err := Run(context.Background(), opts, "127.0.0.1", ports(p, p, p), nil); err != nil {
		t.Fatal(err)
	}
	// knock 0.8 waits after every knock, the last one included.
	if d := time.Since(start); d < 3*delay {
		t.Errorf("3 knocks with a %v delay took %v, want at least %v", delay, d, 3*delay)
	}
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d < delay {
			t.Errorf("knock %d came %v after the previous one, want at least %v", i, d, delay)
		}
	}
}

func TestRunBadArgumentSendsNothing(t *testing.T) {
	t.Parallel()
	c, p := udpSock(t, "127.0.0.1")
	tests := []struct {
		host    string
		args    []string
		opts    Options
		wantErr string
	}{
		{"127.0.0.1", []string{fmt.Sprintf("%d:udp", p), "7000:xyz"}, Options{},
			`knock: "7000:xyz": unknown protocol "xyz" (want tcp or udp)`},
		{"127.0.0.1", []string{fmt.Sprintf("%d:udp", p), "abc"}, Options{},
			`knock: "abc": unknown port or service name`},
		{"127.0.0.1", []string{fmt.Sprintf("%d:udp", p)}, Options{Family: IPv6},
			fmt.Sprintf("Failed to resolve hostname '127.0.0.1' on port %d\ngetaddrinfo: Address family for hostname not supported", p)},
		{"::1", []string{"7000"}, Options{Family: IPv4},
			"Failed to resolve hostname '::1' on port 7000\ngetaddrinfo: Address family for hostname not supported"},
		{"fe80::1%no-such-interface-9", []string{"7000"}, Options{},
			"knock: hitting tcp [fe80::1%no-such-interface-9]:7000: route ip+net: no such network interface"},
	}
	for _, tt := range tests {
		err := Run(context.Background(), tt.opts, tt.host, tt.args, nil)
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("Run(%s, %q) error = %v, want %s", tt.host, tt.args, err, tt.wantErr)
		}
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := c.ReadFrom(make([]byte, 10)); err == nil {
		t.Error("a knock was sent before a bad argument was found")
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	_, p := udpSock(t, "127.0.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := Run(ctx, Options{UDP: true, Delay: time.Hour}, "127.0.0.1", ports(p, p), nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run cancelled during the delay: %v, want context.Canceled", err)
	}
}

// fakeDNS answers A and AAAA queries for the names in its table and
// NXDOMAIN for the rest, counting the queries.
type fakeDNS struct {
	addrs   map[string][]netip.Addr // by FQDN, "dual.test."
	queries atomic.Int32
}

func (f *fakeDNS) resolver(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no UDP on 127.0.0.1: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	go f.serve(pc)
	server := pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", server)
		},
	}
}

func (f *fakeDNS) serve(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil || len(m.Questions) != 1 {
			continue
		}
		f.queries.Add(1)
		q := m.Questions[0]
		m.Header.Response = true
		m.Header.Authoritative = true
		addrs, ok := f.addrs[strings.ToLower(q.Name.String())]
		if !ok {
			m.Header.RCode = dnsmessage.RCodeNameError
		}
		for _, a := range addrs {
			h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch {
			case q.Type == dnsmessage.TypeA && a.Is4():
				h.Type = dnsmessage.TypeA
				m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
			case q.Type == dnsmessage.TypeAAAA && a.Is6():
				h.Type = dnsmessage.TypeAAAA
				m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
			}
		}
		out, err := m.Pack()
		if err != nil {
			continue
		}
		pc.WriteTo(out, from)
	}
}

func TestRunFamily(t *testing.T) {
	t.Parallel()
	v4, v6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	dns := &fakeDNS{addrs: map[string][]netip.Addr{
		"dual.test.":   {v4, v6},
		"v4only.test.": {v4},
		"v6only.test.": {v6},
	}}
	r := dns.resolver(t)
	_, p4 := udpSock(t, "127.0.0.1")
	_, p6 := udpSock(t, "::1")
	// The same port number on both addresses is not guaranteed; knock
	// both ports and check which address was used.
	tests := []struct {
		host    string
		family  Family
		want    []netip.Addr // any of these
		wantErr string
	}{
		{host: "dual.test", family: IPv4, want: []netip.Addr{v4}},
		{host: "dual.test", family: IPv6, want: []netip.Addr{v6}},
		{host: "dual.test", family: AnyFamily, want: []netip.Addr{v4, v6}},
		{host: "v4only.test", family: AnyFamily, want: []netip.Addr{v4}},
		{host: "v6only.test", family: AnyFamily, want: []netip.Addr{v6}},
		{host: "v4only.test", family: IPv6, wantErr: "Failed to resolve hostname 'v4only.test' on port %d\ngetaddrinfo: Name or service not known"},
		{host: "v6only.test", family: IPv4, wantErr: "Failed to resolve hostname 'v6only.test' on port %d\ngetaddrinfo: Name or service not known"},
		{host: "nx.test", family: AnyFamily, wantErr: "Failed to resolve hostname 'nx.test' on port %d\ngetaddrinfo: Name or service not known"},
		{host: "127.0.0.1", family: IPv4, want: []netip.Addr{v4}},
		{host: "::1", family: IPv6, want: []netip.Addr{v6}},
		{host: "::ffff:127.0.0.1", family: AnyFamily, want: []netip.Addr{v4}},
	}
	for _, tt := range tests {
		var got []netip.Addr
		opts := Options{UDP: true, Family: tt.family, Resolver: r, Observe: func(res Result) { got = append(got, res.Addr.Addr()) }}
		before := dns.queries.Load()
		err := Run(context.Background(), opts, tt.host, ports(p4, p6, p4, p6, p4), nil)
		if tt.wantErr != "" {
			if want := fmt.Sprintf(tt.wantErr, p4); err == nil || err.Error() != want {
				t.Errorf("%s family %d: error = %v, want %s", tt.host, tt.family, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s family %d: %v", tt.host, tt.family, err)
			continue
		}
		if len(got) != 5 {
			t.Errorf("%s family %d: %d knocks, want 5", tt.host, tt.family, len(got))
			continue
		}
		for _, a := range got {
			if a != got[0] {
				t.Errorf("%s family %d: knocked %v: the host was resolved more than once", tt.host, tt.family, got)
				break
			}
		}
		found := false
		for _, w := range tt.want {
			found = found || got[0] == w
		}
		if !found {
			t.Errorf("%s family %d: knocked %v, want one of %v", tt.host, tt.family, got[0], tt.want)
		}
		// One lookup: an A and/or an AAAA query, whatever the number of
		// knocks.
		if q := dns.queries.Load() - before; q > 2 {
			t.Errorf("%s family %d: %d DNS queries for 5 knocks, want at most 2", tt.host, tt.family, q)
		}
	}
}

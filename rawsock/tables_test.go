package rawsock

import (
	"net/netip"
	"testing"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

func TestJudge(t *testing.T) {
	target := netip.MustParseAddr("192.0.2.99")
	spec := capture.Spec{Ports: []capture.Port{
		{Proto: wire.TCP, Port: 7000, Flags: []wire.FlagFilter{{Set: wire.SYN, Unset: wire.ACK}}},
		{Proto: wire.TCP, Port: 7001, Flags: []wire.FlagFilter{{Set: wire.FIN}, {Set: wire.URG}}},
		{Proto: wire.TCP, Port: 7002, Flags: nil},
		{Proto: wire.UDP, Port: 9000, Targets: []netip.Addr{target}},
		{Proto: wire.UDP, Port: 9001},
	}}
	tb := newTables(spec)
	view := &netView{locals: map[netip.Addr]struct{}{
		netip.MustParseAddr(b4): {}, netip.MustParseAddr(b6): {},
	}}
	tcp4 := func(dst string, port uint16, flags uint8) []byte {
		return ip4(a4, dst, protoTCP, 0, nil, tcpHdr(1, port, flags))
	}
	tests := []struct {
		name     string
		b        []byte
		pkttype  uint8
		ethProto uint16
		want     verdict
	}{
		{"SYN to a local address", tcp4(b4, 7000, wire.SYN), packetHost, ethPIPv4, verdictEvent},
		{"IPv6 SYN to a local address", ip6(a6, b6, protoTCP, nil, tcpHdr(1, 7000, wire.SYN)), packetHost, ethPIPv6, verdictEvent},
		{"IPv6 with hop-by-hop", ip6(a6, b6, 0, optHdr(protoTCP), tcpHdr(1, 7000, wire.SYN)), packetHost, ethPIPv6, verdictEvent},
		{"SYN+ACK", tcp4(b4, 7000, wire.SYN|wire.ACK), packetHost, ethPIPv4, verdictIgnored},
		{"either of two flag sets: FIN", tcp4(b4, 7001, wire.FIN), packetHost, ethPIPv4, verdictEvent},
		{"either of two flag sets: URG", tcp4(b4, 7001, wire.URG|wire.ACK), packetHost, ethPIPv4, verdictEvent},
		{"either of two flag sets: neither", tcp4(b4, 7001, wire.SYN), packetHost, ethPIPv4, verdictIgnored},
		{"no flags listed", tcp4(b4, 7002, wire.RST), packetHost, ethPIPv4, verdictEvent},
		{"other port", tcp4(b4, 7003, wire.SYN), packetHost, ethPIPv4, verdictIgnored},
		{"TCP to a UDP port", tcp4(b4, 9001, wire.SYN), packetHost, ethPIPv4, verdictIgnored},
		{"not a local address", tcp4("203.0.113.2", 7000, wire.SYN), packetHost, ethPIPv4, verdictIgnored},
		{"to the target", ip4(a4, target.String(), protoUDP, 0, nil, udpHdr(1, 9000, nil)), packetHost, ethPIPv4, verdictEvent},
		{"local, but not the target", ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, 9000, nil)), packetHost, ethPIPv4, verdictIgnored},
		{"UDP to a local address", ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, 9001, nil)), packetHost, ethPIPv4, verdictEvent},
		{"outgoing", tcp4(b4, 7000, wire.SYN), 4, ethPIPv4, verdictIgnored},
		{"IPv4 bytes on an IPv6 socket", tcp4(b4, 7000, wire.SYN), packetHost, ethPIPv6, verdictIgnored},
		{"malformed", tcp4(b4, 7000, wire.SYN)[:30], packetHost, ethPIPv4, verdictMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, got := judge(tt.b, tt.pkttype, tt.ethProto, tb, view)
			if got != tt.want {
				t.Errorf("judge = %v (%+v), want %v", got, ev, tt.want)
			}
		})
	}
}

func TestTablesTargets(t *testing.T) {
	x := netip.MustParseAddr("192.0.2.1")
	y := netip.MustParseAddr("::ffff:192.0.2.2") // mapped: stored plain
	tb := newTables(capture.Spec{Ports: []capture.Port{
		{Proto: wire.UDP, Port: 1, Targets: []netip.Addr{x, y}},
		{Proto: wire.UDP, Port: 2, Targets: []netip.Addr{x}},
		{Proto: wire.UDP, Port: 2}, // listed again without targets: any
	}})
	if got := tb.ports[portKey{wire.UDP, 1}].targets; len(got) != 2 || got[1] != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("port 1 targets = %v", got)
	}
	if got := tb.ports[portKey{wire.UDP, 2}].targets; got != nil {
		t.Errorf("port 2 targets = %v, want nil (any local address)", got)
	}
}

func TestJudgeAllocs(t *testing.T) {
	tb := newTables(testSpec)
	view := &netView{locals: map[netip.Addr]struct{}{netip.MustParseAddr(b4): {}, netip.MustParseAddr(b6): {}}}
	pkts := [][]byte{
		ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7000, wire.SYN)),
		ip6(a6, b6, protoUDP, nil, udpHdr(1, 9000, nil)),
		ip4(a4, "203.0.113.9", protoUDP, 0, nil, udpHdr(1, 9000, nil)),
	}
	for _, b := range pkts {
		proto := uint16(ethPIPv4)
		if b[0]>>4 == 6 {
			proto = ethPIPv6
		}
		if n := testing.AllocsPerRun(100, func() { judge(b, packetHost, proto, tb, view) }); n != 0 {
			t.Errorf("judge allocates %v times per packet, want 0", n)
		}
	}
}

func TestInterfaceNames(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want []string
		ok   bool
	}{
		{nil, nil, true},
		{[]string{}, nil, true},
		{[]string{"any"}, nil, true},
		{[]string{"eth0"}, []string{"eth0"}, true},
		{[]string{"eth0", "ppp0", "eth0"}, []string{"eth0", "ppp0"}, true},
		{[]string{"any", "eth0"}, nil, false},
		{[]string{""}, nil, false},
		{[]string{"a-very-long-name0"}, nil, false},
		{[]string{"eth0:1"}, nil, false},
		{[]string{"a/b"}, nil, false},
	} {
		got, err := interfaceNames(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("interfaceNames(%q) error = %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("interfaceNames(%q) = %q, want %q", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("interfaceNames(%q) = %q, want %q", tt.in, got, tt.want)
			}
		}
	}
}

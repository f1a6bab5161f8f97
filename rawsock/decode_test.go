package rawsock

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

var (
	// ipv4TCPSyn is a TCP SYN from 192.0.2.7:50000 to 203.0.113.1:7000.
	ipv4TCPSyn = []byte{
		0x45,       // version 4, IHL 5 (20 bytes)
		0x00,       // DSCP, ECN
		0x00, 0x28, // total length 40
		0x12, 0x34, // identification
		0x40, 0x00, // flags DF, fragment offset 0
		0x40,       // TTL 64
		0x06,       // protocol TCP
		0x00, 0x00, // header checksum (not checked)
		192, 0, 2, 7, // source
		203, 0, 113, 1, // destination
		// TCP
		0xc3, 0x50, // source port 50000
		0x1b, 0x58, // destination port 7000
		0x00, 0x00, 0x00, 0x01, // sequence number
		0x00, 0x00, 0x00, 0x00, // acknowledgment number
		0x50,       // data offset 5
		0x02,       // flags SYN
		0xfa, 0xf0, // window
		0x00, 0x00, // checksum
		0x00, 0x00, // urgent pointer
	}

	// ipv4Options is a TCP ACK+PSH to port 8000 whose IPv4 header
	// carries 8 bytes of options.
	ipv4Options = []byte{
		0x47,       // version 4, IHL 7 (28 bytes)
		0x00,       // DSCP, ECN
		0x00, 0x30, // total length 48
		0x00, 0x01, // identification
		0x00, 0x00, // no flags, fragment offset 0
		0x40,       // TTL 64
		0x06,       // protocol TCP
		0x00, 0x00, // header checksum
		192, 0, 2, 7, // source
		203, 0, 113, 1, // destination
		0x94, 0x04, 0x00, 0x00, // option: router alert
		0x01, 0x01, 0x01, 0x00, // options: NOP, NOP, NOP, end of list
		// TCP
		0x04, 0x00, // source port 1024
		0x1f, 0x40, // destination port 8000
		0, 0, 0, 0, // sequence number
		0, 0, 0, 9, // acknowledgment number
		0x50, // data offset 5
		0x18, // flags PSH, ACK
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
	}

	// ipv4UDP is a UDP datagram to port 9000 with one byte of payload,
	// followed by Ethernet padding that the IP length excludes.
	ipv4UDP = []byte{
		0x45,       // version 4, IHL 5
		0x00,       // DSCP, ECN
		0x00, 0x1d, // total length 29
		0x00, 0x02, // identification
		0x00, 0x00, // fragment offset 0
		0x40,       // TTL 64
		0x11,       // protocol UDP
		0x00, 0x00, // header checksum
		198, 51, 100, 20, // source
		203, 0, 113, 1, // destination
		// UDP
		0x30, 0x39, // source port 12345
		0x23, 0x28, // destination port 9000
		0x00, 0x09, // length 9
		0x00, 0x00, // checksum
		'k', // payload
		// Ethernet padding to the 46-byte minimum
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	}

	// ipv6TCP is a TCP SYN from 2001:db8::7 to 2001:db8::1 port 7000.
	ipv6TCP = []byte{
		0x60, 0x00, 0x00, 0x00, // version 6, traffic class, flow label
		0x00, 0x14, // payload length 20
		0x06, 0x40, // next header TCP, hop limit 64
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, // source
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // destination
		// TCP
		0xc3, 0x50, // source port 50000
		0x1b, 0x58, // destination port 7000
		0, 0, 0, 1, // sequence number
		0, 0, 0, 0, // acknowledgment number
		0x50,       // data offset 5
		0x02,       // flags SYN
		0xfa, 0xf0, // window
		0, 0, 0, 0, // checksum, urgent pointer
	}

	// ipv6Ext is a UDP datagram to port 9000 behind a hop-by-hop options
	// header and the fragment header of a first fragment.
	ipv6Ext = []byte{
		0x60, 0x00, 0x00, 0x00, // version 6
		0x00, 0x18, // payload length 24
		0x00, 0x40, // next header hop-by-hop options, hop limit 64
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, // source
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // destination
		// hop-by-hop options
		0x2c, 0x00, // next header fragment, length 0 (8 bytes)
		0x01, 0x04, 0, 0, 0, 0, // PadN, 4 bytes
		// fragment
		0x11,       // next header UDP
		0x00,       // reserved
		0x00, 0x01, // offset 0, more fragments
		0x00, 0x00, 0xbe, 0xef, // identification
		// UDP
		0x30, 0x39, // source port 12345
		0x23, 0x28, // destination port 9000
		0x00, 0x08, // length 8
		0x00, 0x00, // checksum
	}
)

func TestDecode(t *testing.T) {
	doc4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name string
		b    []byte
		want capture.Event
		ok   bool
	}{
		{
			name: "IPv4 TCP SYN",
			b:    ipv4TCPSyn,
			want: capture.Event{Src: doc4("192.0.2.7"), Dst: doc4("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN},
			ok:   true,
		},
		{
			name: "IPv4 with options",
			b:    ipv4Options,
			want: capture.Event{Src: doc4("192.0.2.7"), Dst: doc4("203.0.113.1"), Port: 8000, Proto: wire.TCP, Flags: wire.PSH | wire.ACK},
			ok:   true,
		},
		{
			name: "IPv4 UDP with padding",
			b:    ipv4UDP,
			want: capture.Event{Src: doc4("198.51.100.20"), Dst: doc4("203.0.113.1"), Port: 9000, Proto: wire.UDP},
			ok:   true,
		},
		{
			name: "IPv6 TCP",
			b:    ipv6TCP,
			want: capture.Event{Src: doc4("2001:db8::7"), Dst: doc4("2001:db8::1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN},
			ok:   true,
		},
		{
			name: "IPv6 hop-by-hop and first fragment",
			b:    ipv6Ext,
			want: capture.Event{Src: doc4("2001:db8::7"), Dst: doc4("2001:db8::1"), Port: 9000, Proto: wire.UDP},
			ok:   true,
		},
		{
			name: "ECE and CWR are not reported",
			b:    with(ipv4TCPSyn, 33, 0xc2),
			want: capture.Event{Src: doc4("192.0.2.7"), Dst: doc4("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN},
			ok:   true,
		},
		{
			name: "IPv4 first fragment with the whole TCP header",
			b:    with(ipv4TCPSyn, 6, 0x20), // MF, offset 0
			want: capture.Event{Src: doc4("192.0.2.7"), Dst: doc4("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN},
			ok:   true,
		},
		{
			name: "IPv4 first fragment cut after the flags",
			b:    with(with(ipv4TCPSyn[:34], 6, 0x20), 3, 34),
			want: capture.Event{Src: doc4("192.0.2.7"), Dst: doc4("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN},
			ok:   true,
		},
		{name: "empty", b: nil},
		{name: "version 5", b: with(ipv4TCPSyn, 0, 0x55)},
		{name: "IPv4 header cut", b: ipv4TCPSyn[:19]},
		{name: "IPv4 IHL below 5", b: with(ipv4TCPSyn, 0, 0x44)},
		{name: "IPv4 IHL past the packet", b: with(ipv4TCPSyn[:24], 0, 0x47)},
		{name: "IPv4 total length below the header", b: with(ipv4TCPSyn, 3, 19)},
		{name: "IPv4 total length without the TCP flags", b: with(ipv4TCPSyn, 3, 33)},
		{name: "IPv4 TCP cut before the flags", b: ipv4TCPSyn[:33]},
		{name: "IPv4 UDP cut", b: with(ipv4UDP[:27], 3, 27)},
		{name: "IPv4 non-first fragment", b: with(ipv4TCPSyn, 7, 0x01)},
		{name: "IPv4 last fragment", b: with(with(ipv4TCPSyn, 6, 0x1f), 7, 0xff)},
		{name: "TCP data offset below 5", b: with(ipv4TCPSyn, 32, 0x40)},
		{name: "ICMP", b: with(ipv4TCPSyn, 9, 1)},
		{name: "IPv6 header cut", b: ipv6TCP[:39]},
		{name: "IPv6 TCP cut", b: ipv6TCP[:53]},
		{name: "IPv6 payload length without TCP", b: with(ipv6TCP, 5, 10)},
		{name: "IPv6 extension header cut", b: ipv6Ext[:47]},
		{name: "IPv6 hop-by-hop length past the packet", b: with(ipv6Ext, 41, 9)},
		{name: "IPv6 non-first fragment", b: with(ipv6Ext, 51, 0x08)},
		{name: "IPv6 hop-by-hop not first", b: with(ipv6Ext, 48, 0)},
		{name: "IPv6 ESP", b: with(ipv6TCP, 6, 50)},
		{name: "IPv6 no next header", b: with(ipv6TCP, 6, 59)},
		{name: "IPv6 v4-mapped source", b: mapped(ipv6TCP, 8)},
		{name: "IPv6 v4-mapped destination", b: mapped(ipv6TCP, 24)},
		{
			name: "IPv6 routing header with segments left",
			b:    ip6("2001:db8::7", "2001:db8::1", 43, []byte{6, 0, 4, 1, 0, 0, 0, 0}, tcpHdr(1, 7000, wire.SYN)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Decode(tt.b)
			if ok != tt.ok {
				t.Fatalf("Decode ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
			if got.Src.Is4() != got.Dst.Is4() || got.Src.Is4In6() || got.Src.Zone() != "" {
				t.Errorf("addresses %v, %v: want plain and of one family", got.Src, got.Dst)
			}
		})
	}
}

func TestDecodeExtensionHeaders(t *testing.T) {
	const src, dst = "2001:db8::7", "2001:db8::1"
	udp := udpHdr(5, 9000, nil)
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"destination options", ip6(src, dst, 60, optHdr(17), udp), true},
		{"routing, no segments left", ip6(src, dst, 43, []byte{17, 0, 4, 0, 0, 0, 0, 0}, udp), true},
		{"authentication header", ip6(src, dst, 51, []byte{17, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2}, udp), true},
		{"authentication header cut", ip6(src, dst, 51, []byte{17, 1, 0, 0, 0, 0, 0, 1}, nil), false},
		{"mobility", ip6(src, dst, 135, optHdr(17), udp), true},
		{"eight headers", ip6(src, dst, 0, cat(optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(17)), udp), true},
		{"nine headers", ip6(src, dst, 0, cat(optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(60), optHdr(17)), udp), false},
		{"unknown next header", ip6(src, dst, 0, optHdr(200), udp), false},
		{"fragment then ESP", ip6(src, dst, 44, fragHdr(50, 0, true), udp), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok := Decode(tt.b)
			if ok != tt.ok {
				t.Fatalf("Decode ok = %v, want %v", ok, tt.ok)
			}
			if ok && (ev.Port != 9000 || ev.Proto != wire.UDP) {
				t.Errorf("Decode = %+v, want UDP port 9000", ev)
			}
		})
	}
}

// with returns a copy of b with b[i] = v.
func with(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}

// mapped returns a copy of the IPv6 packet b with the address at off
// made IPv4-mapped.
func mapped(b []byte, off int) []byte {
	c := append([]byte(nil), b...)
	a := netip.MustParseAddr("::ffff:192.0.2.7").As16()
	copy(c[off:off+16], a[:])
	return c
}

func TestDecodeAllocs(t *testing.T) {
	for _, b := range [][]byte{ipv4TCPSyn, ipv4Options, ipv4UDP, ipv6TCP, ipv6Ext, ipv4TCPSyn[:20]} {
		if n := testing.AllocsPerRun(100, func() { Decode(b) }); n != 0 {
			t.Errorf("Decode allocates %v times per packet, want 0", n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bm := range []struct {
		name string
		b    []byte
	}{{"IPv4TCP", ipv4TCPSyn}, {"IPv4Options", ipv4Options}, {"IPv6TCP", ipv6TCP}, {"IPv6Ext", ipv6Ext}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.b)))
			for b.Loop() {
				if _, ok := Decode(bm.b); !ok {
					b.Fatal("Decode failed")
				}
			}
		})
	}
}

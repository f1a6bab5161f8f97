package rawsock

import (
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// testSpec knocks on TCP 7000 (doors that all want SYN without ACK, one
// of them also FIN), TCP 8000 (any flags), UDP 9000 and UDP 9001.
var testSpec = capture.Spec{Ports: []capture.Port{
	{Proto: wire.TCP, Port: 7000, Flags: []wire.FlagFilter{{Set: wire.SYN, Unset: wire.ACK}, {Set: wire.SYN | wire.FIN, Unset: wire.ACK | wire.RST}}},
	{Proto: wire.TCP, Port: 8000, Flags: []wire.FlagFilter{{Set: wire.SYN}, {}}},
	{Proto: wire.UDP, Port: 9000},
	{Proto: wire.UDP, Port: 9001},
}}

const (
	a4, b4 = "198.51.100.7", "203.0.113.1"
	a6, b6 = "2001:db8::7", "2001:db8::1"
)

type filterCase struct {
	name   string
	b      []byte
	accept bool
}

func filterCases() []filterCase {
	syn := tcpHdr(40000, 7000, wire.SYN)
	udp := udpHdr(40000, 9000, []byte("knock"))
	return []filterCase{
		{"IPv4 TCP SYN", ip4(a4, b4, protoTCP, 0, nil, syn), true},
		{"IPv4 TCP SYN+FIN", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7000, wire.SYN|wire.FIN)), true},
		{"IPv4 TCP SYN+ACK", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7000, wire.SYN|wire.ACK)), false},
		{"IPv4 TCP ACK", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7000, wire.ACK)), false},
		{"IPv4 TCP RST", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7000, wire.RST)), false},
		{"IPv4 TCP SYN+RST (Go decides)", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7000, wire.SYN|wire.RST)), true},
		{"IPv4 TCP any flags", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 8000, wire.ACK|wire.PSH)), true},
		{"IPv4 TCP other port", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7001, wire.SYN)), false},
		{"IPv4 TCP to a UDP port", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 9000, wire.SYN)), false},
		{"IPv4 TCP source port is a knock port", ip4(a4, b4, protoTCP, 0, nil, tcpHdr(7000, 22, wire.SYN)), false},
		{"IPv4 UDP", ip4(a4, b4, protoUDP, 0, nil, udp), true},
		{"IPv4 UDP 9001", ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, 9001, nil)), true},
		{"IPv4 UDP other port", ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, 9002, nil)), false},
		{"IPv4 UDP to a TCP port", ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, 8000, nil)), false},
		{"IPv4 with options", ip4(a4, b4, protoTCP, 0, []byte{0x94, 4, 0, 0, 1, 1, 1, 0}, syn), true},
		{"IPv4 with options, other port", ip4(a4, b4, protoTCP, 0, []byte{0x94, 4, 0, 0, 1, 1, 1, 0}, tcpHdr(1, 7001, wire.SYN)), false},
		{"IPv4 first fragment", ip4(a4, b4, protoUDP, 0x2000, nil, udp), true},
		{"IPv4 non-first fragment", ip4(a4, b4, protoUDP, 0x0001, nil, udp), false},
		{"IPv4 last fragment", ip4(a4, b4, protoUDP, 0x0100, nil, udp), false},
		{"IPv4 ICMP", ip4(a4, b4, 1, 0, nil, []byte{8, 0, 0, 0, 0x23, 0x28, 0, 1}), false},
		{"IPv4 GRE", ip4(a4, b4, 47, 0, nil, syn), false},
		{"IPv4 truncated TCP", ip4(a4, b4, protoTCP, 0, nil, syn[:3]), false},
		{"IPv4 truncated before the flags", ip4(a4, b4, protoTCP, 0, nil, syn[:13]), false},
		{"IPv6 TCP SYN", ip6(a6, b6, protoTCP, nil, syn), true},
		{"IPv6 TCP ACK", ip6(a6, b6, protoTCP, nil, tcpHdr(1, 7000, wire.ACK)), false},
		{"IPv6 TCP other port", ip6(a6, b6, protoTCP, nil, tcpHdr(1, 22, wire.SYN)), false},
		{"IPv6 UDP", ip6(a6, b6, protoUDP, nil, udp), true},
		{"IPv6 UDP other port", ip6(a6, b6, protoUDP, nil, udpHdr(1, 53, nil)), false},
		{"IPv6 ICMPv6", ip6(a6, b6, 58, nil, []byte{128, 0, 0, 0, 0, 1, 0, 1}), false},
		{"IPv6 hop-by-hop (for Go)", ip6(a6, b6, 0, optHdr(protoTCP), tcpHdr(1, 22, wire.SYN)), true},
		{"IPv6 fragment header (for Go)", ip6(a6, b6, 44, fragHdr(protoUDP, 0, true), udp), true},
		{"IPv6 hop-by-hop and fragment (for Go)", ip6(a6, b6, 0, cat(optHdr(44), fragHdr(protoUDP, 0, true)), udp), true},
		{"IPv6 destination options (for Go)", ip6(a6, b6, 60, optHdr(protoUDP), udp), true},
		{"IPv6 routing (for Go)", ip6(a6, b6, 43, []byte{protoUDP, 0, 4, 0, 0, 0, 0, 0}, udp), true},
		{"IPv6 AH (for Go)", ip6(a6, b6, 51, []byte{protoUDP, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2}, udp), true},
		{"IPv6 ESP", ip6(a6, b6, 50, nil, udp), false},
		{"IPv6 no next header", ip6(a6, b6, 59, nil, nil), false},
		{"version 5", with(ip4(a4, b4, protoUDP, 0, nil, udp), 0, 0x55), false},
		{"empty", nil, false},
	}
}

// runFilter runs prog on b in bpf.VM.
func runFilter(t testing.TB, prog []bpf.Instruction, b []byte) bool {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	n, err := vm.Run(b)
	if err != nil {
		t.Fatalf("VM.Run: %v", err)
	}
	return n > 0
}

func TestProgramBody(t *testing.T) {
	prog, err := program(testSpec, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range filterCases() {
		t.Run(tc.name, func(t *testing.T) {
			if got := runFilter(t, prog, tc.b); got != tc.accept {
				t.Errorf("accepted = %v, want %v", got, tc.accept)
			}
		})
	}
}

// withAncillary replaces the program's ancillary loads with constants, so
// that bpf.VM can run the prologue too.
func withAncillary(t *testing.T, prog []bpf.Instruction, pkttype, ethProto uint32) []bpf.Instruction {
	out := make([]bpf.Instruction, len(prog))
	for i, ins := range prog {
		if ext, ok := ins.(bpf.LoadExtension); ok {
			switch ext.Num {
			case bpf.ExtType:
				ins = bpf.LoadConstant{Dst: bpf.RegA, Val: pkttype}
			case bpf.ExtProto:
				ins = bpf.LoadConstant{Dst: bpf.RegA, Val: ethProto}
			default:
				t.Fatalf("instruction %d: unexpected ancillary load %v", i, ext.Num)
			}
		}
		out[i] = ins
	}
	return out
}

func TestProgramPrologue(t *testing.T) {
	prog, err := Program(testSpec)
	if err != nil {
		t.Fatal(err)
	}
	prog4, err := Program(capture.Spec{Ports: testSpec.Ports, IPv4Only: true})
	if err != nil {
		t.Fatal(err)
	}
	v4 := ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 7000, wire.SYN))
	v6 := ip6(a6, b6, protoTCP, nil, tcpHdr(1, 7000, wire.SYN))
	tests := []struct {
		name     string
		prog     []bpf.Instruction
		pkttype  uint32
		ethProto uint32
		b        []byte
		accept   bool
	}{
		{"IPv4 to this host", prog, packetHost, ethPIPv4, v4, true},
		{"IPv6 to this host", prog, packetHost, ethPIPv6, v6, true},
		{"broadcast", prog, 1, ethPIPv4, v4, false},
		{"multicast", prog, 2, ethPIPv4, v4, false},
		{"another host (promiscuous)", prog, 3, ethPIPv4, v4, false},
		{"outgoing", prog, 4, ethPIPv4, v4, false},
		{"ARP", prog, packetHost, 0x0806, v4, false},
		{"MPLS", prog, packetHost, 0x8847, v4, false},
		{"IPv4 only: IPv4", prog4, packetHost, ethPIPv4, v4, true},
		{"IPv4 only: IPv6", prog4, packetHost, ethPIPv6, v6, false},
		{"IPv4 only: IPv6 bytes as IPv4", prog4, packetHost, ethPIPv4, v6, false},
		{"IPv6 bytes with IPv4 protocol", prog, packetHost, ethPIPv4, v6, true}, // Go checks
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, withAncillary(t, tt.prog, tt.pkttype, tt.ethProto), tt.b); got != tt.accept {
				t.Errorf("accepted = %v, want %v", got, tt.accept)
			}
		})
	}
	// The prologue must not change what the body decides.
	for _, tc := range filterCases() {
		if got := runFilter(t, withAncillary(t, prog, packetHost, ethPIPv4), tc.b); got != tc.accept {
			t.Errorf("%s: with prologue accepted = %v, want %v", tc.name, got, tc.accept)
		}
	}
}

func TestProgramNoPorts(t *testing.T) {
	for _, spec := range []capture.Spec{{}, {IPv4Only: true}} {
		prog, err := Program(spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range filterCases() {
			if runFilter(t, withAncillary(t, prog, packetHost, ethPIPv4), tc.b) {
				t.Errorf("%s: accepted with no ports", tc.name)
			}
		}
	}
}

func TestProgramOnlyOneProtocol(t *testing.T) {
	tcpOnly := capture.Spec{Ports: []capture.Port{{Proto: wire.TCP, Port: 9000}}}
	udpOnly := capture.Spec{Ports: []capture.Port{{Proto: wire.UDP, Port: 9000}}}
	tcp := ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, 9000, wire.SYN))
	udp := ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, 9000, nil))
	for _, tt := range []struct {
		spec   capture.Spec
		b      []byte
		accept bool
	}{
		{tcpOnly, tcp, true}, {tcpOnly, udp, false}, {udpOnly, tcp, false}, {udpOnly, udp, true},
	} {
		prog, err := program(tt.spec, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := runFilter(t, prog, tt.b); got != tt.accept {
			t.Errorf("spec %v, packet proto %d: accepted = %v, want %v", tt.spec.Ports, tt.b[9], got, tt.accept)
		}
	}
}

func TestProgramBadProtocol(t *testing.T) {
	_, err := Program(capture.Spec{Ports: []capture.Port{{Proto: 1, Port: 1}}})
	if err == nil {
		t.Fatal("Program accepted an ICMP port")
	}
}

// TestProgramManyPorts builds the largest program a configuration can
// ask for (32 doors of 32 knocks, all different ports and flags) and
// checks every port, its neighbours and the flag tests: jumps past 255
// instructions go through trampolines.
func TestProgramManyPorts(t *testing.T) {
	var spec capture.Spec
	flagSets := []wire.FlagFilter{{}, {Set: wire.SYN}, {Set: wire.SYN, Unset: wire.ACK}, {Unset: wire.RST}, {Set: wire.FIN | wire.URG}}
	for i := range 1024 {
		p := capture.Port{Proto: wire.TCP, Port: uint16(1000 + 3*i)}
		if i%2 == 1 {
			p.Proto = wire.UDP
		} else {
			p.Flags = []wire.FlagFilter{flagSets[(i/2)%len(flagSets)]}
		}
		spec.Ports = append(spec.Ports, p)
	}
	prog, err := Program(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) > MaxInstructions {
		t.Fatalf("program has %d instructions", len(prog))
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	t.Logf("1024 ports: %d instructions", len(prog))
	body, err := program(spec, false)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(body)
	if err != nil {
		t.Fatal(err)
	}
	run := func(b []byte) bool {
		n, err := vm.Run(b)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	for i, p := range spec.Ports {
		for _, delta := range []int{-1, 0, 1} {
			port := uint16(int(p.Port) + delta)
			want := delta == 0
			var pkts [][]byte
			var flags uint8
			if p.Proto == wire.TCP {
				f := p.Flags[0]
				flags = f.Set
				pkts = append(pkts, ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, port, flags)), ip6(a6, b6, protoTCP, nil, tcpHdr(1, port, flags)))
			} else {
				pkts = append(pkts, ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, port, nil)), ip6(a6, b6, protoUDP, nil, udpHdr(1, port, nil)))
			}
			for _, b := range pkts {
				if got := run(b); got != want {
					t.Fatalf("port %d (%d: %v %d %v): accepted = %v, want %v", port, i, p.Proto, p.Port, p.Flags, got, want)
				}
			}
			if p.Proto == wire.TCP && delta == 0 && p.Flags[0] != (wire.FlagFilter{}) {
				// The same port with the flags the door refuses.
				f := p.Flags[0]
				bad := (flags | f.Unset) &^ f.Set
				if run(ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, port, bad))) {
					t.Fatalf("port %d flags %#x accepted, door wants %v", port, bad, f)
				}
			}
		}
	}
}

func TestProgramTooLong(t *testing.T) {
	var spec capture.Spec
	for i := range 4000 {
		spec.Ports = append(spec.Ports, capture.Port{Proto: wire.UDP, Port: uint16(2 * i)})
	}
	if _, err := Program(spec); err == nil {
		t.Fatal("Program built a program for 4000 ports")
	}
}

// TestProgramDifferential checks, over many ports and packets, that the
// program keeps every packet the decoder and the port tables would
// report: the kernel filter may be looser than Go, never stricter.
func TestProgramDifferential(t *testing.T) {
	prog, err := program(testSpec, false)
	if err != nil {
		t.Fatal(err)
	}
	tb := newTables(testSpec)
	view := &netView{locals: map[netip.Addr]struct{}{
		netip.MustParseAddr(b4): {}, netip.MustParseAddr(b6): {},
	}}
	n := 0
	for _, port := range []uint16{7000, 7001, 8000, 9000, 9001} {
		for flags := range uint8(64) {
			for _, b := range [][]byte{
				ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, port, flags)),
				ip6(a6, b6, protoTCP, nil, tcpHdr(1, port, flags)),
				ip6(a6, b6, 0, optHdr(protoTCP), tcpHdr(1, port, flags)),
				ip4(a4, b4, protoUDP, 0, nil, udpHdr(1, port, nil)),
			} {
				proto := uint16(ethPIPv4)
				if b[0]>>4 == 6 {
					proto = ethPIPv6
				}
				_, v := judge(b, packetHost, proto, tb, view)
				if v == verdictEvent {
					n++
					if !runFilter(t, prog, b) {
						t.Fatalf("port %d flags %#x: Go keeps it, the filter drops it:\n%s", port, flags, fmt.Sprintf("% x", b))
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no packet was an event")
	}
}

// TestProgramFlagsFallback checks that when flag tests would make the
// program too long, it keeps every packet to the ports and leaves the
// flags to Go.
func TestProgramFlagsFallback(t *testing.T) {
	var spec capture.Spec
	for i := range 1024 {
		spec.Ports = append(spec.Ports, capture.Port{Proto: wire.TCP, Port: uint16(2 + 61*i), Flags: []wire.FlagFilter{{Set: uint8(i % 64), Unset: uint8((i/64)%64) &^ uint8(i%64)}}})
	}
	prog := fallbackProgram(t, spec)
	for _, p := range spec.Ports[:100] {
		refused := p.Flags[0].Unset | (^p.Flags[0].Set & tcpFlagMask &^ p.Flags[0].Unset)
		if !runFilter(t, prog, ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, p.Port, refused))) {
			t.Fatalf("port %d dropped by flags %#x", p.Port, refused)
		}
		if runFilter(t, prog, ip4(a4, b4, protoTCP, 0, nil, tcpHdr(1, p.Port+1, 0))) {
			t.Fatalf("port %d accepted", p.Port+1)
		}
	}
}

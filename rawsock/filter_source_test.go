package rawsock

import (
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// sourceDoors are doors limited to sources (the Source key), beside doors
// that are not, on shared and separate ports.
func sourceDoors() []*config.Door {
	pfx := func(ps ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range ps {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	tcp := func(p uint16) wire.Knock { return wire.Knock{Port: p, Proto: wire.TCP} }
	udp := func(p uint16) wire.Knock { return wire.Knock{Port: p, Proto: wire.UDP} }
	return []*config.Door{
		// Prefixes of several lengths, one crossing a 32-bit word of
		// an IPv6 address (/66), with TCP flags.
		{Name: "lan", Sequence: []wire.Knock{tcp(7000), udp(9000), tcp(7004)}, Flags: wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK},
			Sources: pfx("198.51.100.0/24", "203.0.113.128/25", "2001:db8:1::/48", "2001:db8:2:0:8000::/66")},
		{Name: "host", Sequence: []wire.Knock{tcp(7001)}, Sources: pfx("192.0.2.7/32", "2001:db8::7/128")},
		{Name: "v6only", Sequence: []wire.Knock{tcp(7002)}, Sources: pfx("2001:db8::/32")},
		{Name: "all4", Sequence: []wire.Knock{udp(7003)}, Sources: pfx("0.0.0.0/0")},
		// 7004 is also other's: its list adds to lan's there.
		{Name: "other", Sequence: []wire.Knock{tcp(7004)}, Sources: pfx("192.0.2.0/24")},
		// 9000 is also open's, which takes any source.
		{Name: "open", Sequence: []wire.Knock{tcp(8000), udp(9000)}},
	}
}

func TestProgramSources(t *testing.T) {
	doors := sourceDoors()
	syn := func(port uint16) []byte { return tcpHdr(40000, port, wire.SYN) }
	udp := func(port uint16) []byte { return udpHdr(40000, port, nil) }
	v4 := func(src string, proto uint8, l4 []byte) []byte { return ip4(src, b4, proto, 0, nil, l4) }
	v6 := func(src string, proto uint8, l4 []byte) []byte { return ip6(src, b6, proto, nil, l4) }
	tests := []struct {
		name   string
		b      []byte
		accept bool
	}{
		{"lan: IPv4 inside a /24", v4("198.51.100.7", protoTCP, syn(7000)), true},
		{"lan: IPv4 just below the /24", v4("198.51.99.255", protoTCP, syn(7000)), false},
		{"lan: IPv4 just above the /24", v4("198.51.101.0", protoTCP, syn(7000)), false},
		{"lan: IPv4 inside a /25", v4("203.0.113.200", protoTCP, syn(7000)), true},
		{"lan: IPv4 in the other half of the /25", v4("203.0.113.127", protoTCP, syn(7000)), false},
		{"lan: IPv4 inside, flags the door refuses", v4("198.51.100.7", protoTCP, tcpHdr(1, 7000, wire.SYN|wire.ACK)), false},
		{"lan: IPv6 inside a /48", v6("2001:db8:1:ffff::1", protoTCP, syn(7000)), true},
		{"lan: IPv6 outside the /48", v6("2001:db8:3::1", protoTCP, syn(7000)), false},
		{"lan: IPv6 inside a /66", v6("2001:db8:2:0:bfff::1", protoTCP, syn(7000)), true},
		{"lan: IPv6 outside the /66, same first 64 bits", v6("2001:db8:2:0:4000::1", protoTCP, syn(7000)), false},
		{"lan: IPv6 outside the /66, other 64 bits", v6("2001:db8:2:1:8000::1", protoTCP, syn(7000)), false},
		{"lan: IPv4-like bytes in an IPv6 source", v6("::198.51.100.7", protoTCP, syn(7000)), false},
		{"host: the address", v4("192.0.2.7", protoTCP, syn(7001)), true},
		{"host: its neighbour", v4("192.0.2.6", protoTCP, syn(7001)), false},
		{"host: the IPv6 address", v6("2001:db8::7", protoTCP, syn(7001)), true},
		{"host: its IPv6 neighbour", v6("2001:db8::8", protoTCP, syn(7001)), false},
		{"v6only: an IPv4 source", v4("198.51.100.7", protoTCP, syn(7002)), false},
		{"v6only: an IPv6 source", v6("2001:db8:ffff::1", protoTCP, syn(7002)), true},
		{"all4: any IPv4 source", v4("233.252.0.1", protoUDP, udp(7003)), true},
		{"all4: an IPv6 source", v6("2001:db8::1", protoUDP, udp(7003)), false},
		{"7004: from lan's list", v4("198.51.100.7", protoTCP, syn(7004)), true},
		{"7004: from other's list", v4("192.0.2.99", protoTCP, syn(7004)), true},
		{"7004: from neither", v4("233.252.0.1", protoTCP, syn(7004)), false},
		{"9000: open takes any source", v4("233.252.0.1", protoUDP, udp(9000)), true},
		{"8000: no door limits it", v6("2001:db8:ffff::1", protoTCP, syn(8000)), true},
		{"a port of no door, from inside", v4("198.51.100.7", protoTCP, syn(7005)), false},
		{"IPv6 extension headers go to Go", ip6("2001:db8:3::1", b6, 0, optHdr(protoTCP), syn(7000)), true},
	}
	spec := capture.NewSpec(doors, nil, false)
	prog, err := program(spec, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, prog, tt.b); got != tt.accept {
				t.Errorf("accepted = %v, want %v", got, tt.accept)
			}
			// With the prologue, as the kernel runs it.
			proto := uint32(ethPIPv4)
			if tt.b[0]>>4 == 6 {
				proto = ethPIPv6
			}
			full, err := Program(spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := runFilter(t, withAncillary(t, full, packetHost, proto), tt.b); got != tt.accept {
				t.Errorf("with the prologue: accepted = %v, want %v", got, tt.accept)
			}
		})
	}
	// knockd -4: the IPv4 cases stand; IPv6 is dropped before.
	spec4 := capture.NewSpec(doors, nil, true)
	prog4, err := program(spec4, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		want := tt.accept && tt.b[0]>>4 == 4
		if got := runFilter(t, prog4, tt.b); got != want {
			t.Errorf("IPv4 only: %s: accepted = %v, want %v", tt.name, got, want)
		}
	}
}

// TestProgramSourcesAgreeWithDoors checks, over many sources and the
// doors' ports, that the program keeps a packet exactly when some door
// knocking on its port takes its source: the rule the matcher applies.
func TestProgramSourcesAgreeWithDoors(t *testing.T) {
	doors := sourceDoors()
	prog, err := program(capture.NewSpec(doors, nil, false), false)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	var srcs []netip.Addr
	for _, base := range []string{"198.51.100.0", "203.0.113.128", "192.0.2.7", "2001:db8:1::", "2001:db8:2:0:8000::", "2001:db8::7"} {
		a := netip.MustParseAddr(base)
		srcs = append(srcs, a, a.Prev(), a.Next())
		for range 70 {
			a = a.Next()
		}
		srcs = append(srcs, a)
	}
	for _, src := range srcs {
		for _, d := range doors {
			for _, k := range d.Sequence {
				want := false
				for _, o := range doors {
					for _, ok := range o.Sequence {
						if ok == k && o.SourceOK(src) {
							want = true
						}
					}
				}
				var l4 []byte
				proto := protoUDP
				if k.Proto == wire.TCP {
					l4, proto = tcpHdr(1, k.Port, wire.SYN), protoTCP
				} else {
					l4 = udpHdr(1, k.Port, nil)
				}
				var b []byte
				if src.Is4() {
					b = ip4(src.String(), b4, proto, 0, nil, l4)
				} else {
					b = ip6(src.String(), b6, proto, nil, l4)
				}
				n, err := vm.Run(b)
				if err != nil {
					t.Fatal(err)
				}
				if got := n > 0; got != want {
					t.Errorf("%v to %v: accepted = %v, want %v", src, k, got, want)
				}
			}
		}
	}
}

// TestProgramSourcesFallback checks that when the source tests make the
// program too long, it keeps every packet to the ports and leaves the
// sources to Go.
func TestProgramSourcesFallback(t *testing.T) {
	var spec capture.Spec
	for i := range 300 {
		p := capture.Port{Proto: wire.UDP, Port: uint16(1000 + i)}
		for j := range 3 {
			p.Sources = append(p.Sources, netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::/64", i, j)))
		}
		spec.Ports = append(spec.Ports, p)
	}
	prog := fallbackProgram(t, spec)
	if !runFilter(t, prog, ip6("2001:db8:ffff::1", b6, protoUDP, nil, udpHdr(1, 1000, nil))) {
		t.Error("a packet from another source dropped though the sources are left to Go")
	}
	if runFilter(t, prog, ip6("2001:db8::1", b6, protoUDP, nil, udpHdr(1, 999, nil))) {
		t.Error("a packet to another port accepted")
	}
}

// fallbackProgram checks that spec is too big for a program with every
// test in it, and returns the program without the prologue that program
// builds in its place.
func fallbackProgram(t *testing.T, spec capture.Spec) []bpf.Instruction {
	t.Helper()
	full, err := build(spec, true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(full) <= MaxInstructions {
		t.Fatalf("the spec fits with every test (%d instructions): the test needs a bigger one", len(full))
	}
	prog, err := program(spec, false)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

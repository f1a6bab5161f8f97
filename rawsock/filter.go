package rawsock

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/bpf"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// MaxInstructions is the longest classic BPF program Linux accepts
// (BPF_MAXINSNS).
const MaxInstructions = 4096

// Values the program works with.
const (
	// acceptLen is what the program returns for a packet it keeps: the
	// kernel delivers min(acceptLen, packet length) bytes.
	acceptLen = 0x40000

	ethPIPv4 = 0x0800
	ethPIPv6 = 0x86dd

	// packetHost is sll_pkttype/skb->pkt_type of a packet addressed to
	// this host (PACKET_HOST).
	packetHost = 0

	protoTCP = uint8(wire.TCP)
	protoUDP = uint8(wire.UDP)
)

// ipv6ExtHeaders are the IPv6 next-header values of extension headers that the
// decoder walks (RFC 7045). BPF cannot loop, so packets that carry them
// are handed to Go.
var ipv6ExtHeaders = []uint32{0, 43, 44, 51, 60, 135, 139, 140, 253, 254}

// Program returns the classic BPF program that keeps candidate knocks for
// spec. It expects cooked (SOCK_DGRAM) packets, whose network header is
// at offset 0, on a socket bound to ETH_P_IP or ETH_P_IPV6.
//
// The program starts with a prologue of ancillary loads, which only the
// kernel can evaluate: it keeps packets addressed to this host
// (PACKET_HOST) whose link-layer protocol is IPv4, or IPv6 unless
// spec.IPv4Only. The rest reads the packet alone; it keeps IPv4 and IPv6
// TCP and UDP packets to the spec's ports (IPv4: first fragments only,
// any header length), where every door on a TCP port requires some flags,
// only packets that carry them, and where a port has Sources, only packets
// from them. IPv6 packets with extension headers are kept whole for the
// decoder to walk. The program is a superset of what the source reports:
// the decoder, the port tables and the matcher decide.
func Program(spec capture.Spec) ([]bpf.Instruction, error) {
	return program(spec, true)
}

// program builds the filter; without the prologue it runs in bpf.VM,
// which cannot evaluate ancillary loads. When testing TCP flags in the
// kernel makes the program too long (many ports, each with its own mix of
// doors), the flags are left to Go, and if that is not enough, the
// sources too.
func program(spec capture.Spec, prologue bool) ([]bpf.Instruction, error) {
	var prog []bpf.Instruction
	var err error
	for _, t := range []struct{ flags, sources bool }{{true, true}, {false, true}, {false, false}} {
		prog, err = build(spec, prologue, t.flags, t.sources)
		if err != nil || len(prog) <= MaxInstructions {
			return prog, err
		}
	}
	if len(prog) > MaxInstructions {
		return nil, fmt.Errorf("rawsock: the filter for %d ports needs %d instructions, more than the kernel's %d",
			len(spec.Ports), len(prog), MaxInstructions)
	}
	return prog, nil
}

func build(spec capture.Spec, prologue, flags, sources bool) ([]bpf.Instruction, error) {
	tcpClass := map[uint16]class{}
	udpPorts := map[uint16]class{}
	var srcs sourceSets
	for _, p := range spec.Ports {
		c := class{srcs: anySource}
		if sources {
			c.srcs = srcs.id(p.Sources)
		}
		switch p.Proto {
		case wire.TCP:
			if flags {
				c.flags = mustFlags(p.Flags)
			}
			if old, ok := tcpClass[p.Port]; ok {
				// A port listed twice: keep what both demand.
				c = class{flagClass{c.flags.set & old.flags.set, c.flags.unset & old.flags.unset}, srcs.union(c.srcs, old.srcs)}
			}
			tcpClass[p.Port] = c
		case wire.UDP:
			if old, ok := udpPorts[p.Port]; ok {
				c.srcs = srcs.union(c.srcs, old.srcs)
			}
			udpPorts[p.Port] = c
		default:
			return nil, fmt.Errorf("rawsock: port %d: protocol %d is neither tcp nor udp", p.Port, p.Proto)
		}
	}
	if len(tcpClass) == 0 && len(udpPorts) == 0 {
		return []bpf.Instruction{bpf.RetConstant{Val: 0}}, nil
	}

	var a assembler
	var (
		accept = a.newLabel()
		reject = a.newLabel()
		body   = a.newLabel()
		v4     = a.newLabel()
		v6     = a.newLabel()
		tcpL   = a.newLabel()
		udpL   = a.newLabel()
	)
	if len(tcpClass) == 0 {
		tcpL = reject
	}
	if len(udpPorts) == 0 {
		udpL = reject
	}

	if prologue {
		a.ins(bpf.LoadExtension{Num: bpf.ExtType})
		a.jif(bpf.JumpEqual, packetHost, next, reject)
		a.ins(bpf.LoadExtension{Num: bpf.ExtProto})
		if spec.IPv4Only {
			a.jif(bpf.JumpEqual, ethPIPv4, body, reject)
		} else {
			a.jif(bpf.JumpEqual, ethPIPv4, body, next)
			a.jif(bpf.JumpEqual, ethPIPv6, body, reject)
		}
	}
	a.mark(body)

	// The IP version, which must agree with the socket's protocol; the
	// decoder checks that too.
	a.ins(
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
	)
	if spec.IPv4Only {
		a.jif(bpf.JumpEqual, 4, v4, reject)
	} else {
		a.jif(bpf.JumpEqual, 4, v4, next)
		a.jif(bpf.JumpEqual, 6, v6, reject)
	}

	// IPv4: only a first fragment carries the ports; X = header length.
	a.mark(v4)
	a.ins(bpf.LoadAbsolute{Off: 6, Size: 2})
	a.jif(bpf.JumpBitsSet, 0x1fff, reject, next)
	a.ins(
		bpf.LoadMemShift{Off: 0},
		bpf.LoadAbsolute{Off: 9, Size: 1},
	)
	a.jif(bpf.JumpEqual, uint32(protoTCP), tcpL, next)
	a.jif(bpf.JumpEqual, uint32(protoUDP), udpL, reject)

	// IPv6: the transport header right after the fixed header is
	// filtered here; extension headers go to the decoder.
	if !spec.IPv4Only {
		a.mark(v6)
		a.ins(
			bpf.LoadConstant{Dst: bpf.RegX, Val: 40},
			bpf.LoadAbsolute{Off: 6, Size: 1},
		)
		a.jif(bpf.JumpEqual, uint32(protoTCP), tcpL, next)
		a.jif(bpf.JumpEqual, uint32(protoUDP), udpL, next)
		for i, e := range ipv6ExtHeaders {
			f := next
			if i == len(ipv6ExtHeaders)-1 {
				f = reject
			}
			a.jif(bpf.JumpEqual, e, accept, f)
		}
	}

	// TCP and UDP: X is the offset of the transport header. Each port
	// leads to the source test and the flag test its doors share.
	for _, pr := range []struct {
		l     label
		ports map[uint16]class
	}{{tcpL, tcpClass}, {udpL, udpPorts}} {
		if len(pr.ports) == 0 {
			continue
		}
		a.mark(pr.l)
		a.ins(bpf.LoadIndirect{Off: 2, Size: 2})
		classes := map[class]label{}
		var order []class
		var targets []portTarget
		for _, port := range sortedKeys(pr.ports) {
			c := pr.ports[port]
			l, ok := classes[c]
			if !ok {
				if c == (class{srcs: anySource}) {
					l = accept
				} else {
					l = a.newLabel()
					order = append(order, c)
				}
				classes[c] = l
			}
			targets = append(targets, portTarget{port, l})
		}
		a.portTree(targets, reject)
		for _, c := range order {
			a.mark(classes[c])
			if c.srcs != anySource {
				a.sourceTest(srcs.sets[c.srcs], spec.IPv4Only, reject)
			}
			a.flagTest(c.flags, accept, reject)
		}
	}

	a.mark(accept)
	a.ins(bpf.RetConstant{Val: acceptLen})
	a.mark(reject)
	a.ins(bpf.RetConstant{Val: 0})

	return a.assemble()
}

// mustFlags returns the TCP flags that every one of flags requires set
// and unset: what the program can test without rejecting a packet that
// some door would take. No flags at all means any packet.
func mustFlags(flags []wire.FlagFilter) (c flagClass) {
	if len(flags) == 0 {
		return c
	}
	c.set, c.unset = 0xff, 0xff
	for _, f := range flags {
		c.set &= f.Set
		c.unset &= f.Unset
	}
	// Only the six flags the decoder reports.
	c.set &= tcpFlagMask
	c.unset &= tcpFlagMask
	return c
}

// flagClass is a TCP flag test: bits that must be set, bits that must
// be clear.
type flagClass struct{ set, unset uint8 }

// class is what the program tests once a packet's port matched: its
// TCP flags, and its source (an index into sourceSets.sets, or
// anySource).
type class struct {
	flags flagClass
	srcs  int
}

// anySource is the class of a port that takes packets from any source.
const anySource = -1

// sourceSets numbers the distinct Sources lists of the ports.
type sourceSets struct {
	sets [][]netip.Prefix
	ids  map[string]int
}

// id returns the number of the list ps, or anySource for nil.
func (s *sourceSets) id(ps []netip.Prefix) int {
	if ps == nil {
		return anySource
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	ps = slices.Compact(ps)
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String())
		b.WriteByte(',')
	}
	if s.ids == nil {
		s.ids = map[string]int{}
	}
	k := b.String()
	if id, ok := s.ids[k]; ok {
		return id
	}
	s.ids[k] = len(s.sets)
	s.sets = append(s.sets, ps)
	return len(s.sets) - 1
}

// union returns the number of the union of lists a and b.
func (s *sourceSets) union(a, b int) int {
	if a == anySource || b == anySource {
		return anySource
	}
	return s.id(append(slices.Clone(s.sets[a]), s.sets[b]...))
}

// flagTest emits the test of TCP flags c, X holding the offset of the
// TCP header: on to pass if the packet carries them, else to fail.
func (a *assembler) flagTest(c flagClass, pass, fail label) {
	if c == (flagClass{}) {
		a.jump(pass)
		return
	}
	a.ins(bpf.LoadIndirect{Off: 13, Size: 1})
	if c.unset != 0 {
		a.jif(bpf.JumpBitsSet, uint32(c.unset), fail, next)
	}
	if c.set != 0 {
		a.ins(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: uint32(c.set)})
		a.jif(bpf.JumpEqual, uint32(c.set), pass, fail)
	} else {
		a.jump(pass)
	}
}

// sourceTest emits the test of the packet's source address against the
// prefixes ps: on to the next instruction if it is in one of them, else
// to fail. It changes A only, so that X still holds the offset of the
// transport header.
func (a *assembler) sourceTest(ps []netip.Prefix, ipv4Only bool, fail label) {
	var v4, v6 []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	pass, l6 := a.newLabel(), a.newLabel()
	if !ipv4Only {
		a.ins(
			bpf.LoadAbsolute{Off: 0, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		)
		a.jif(bpf.JumpEqual, 6, l6, next)
	}
	// IPv4: the source address is at offset 12.
	a.prefixTests(v4, 12, pass, fail)
	a.mark(l6)
	if !ipv4Only {
		// IPv6: at offset 8.
		a.prefixTests(v6, 8, pass, fail)
	}
	a.mark(pass)
}

// prefixTests emits the tests of the address at offset off against the
// prefixes ps, all of one family: to pass if it is in one of them, else
// to fail. It compares 32 bits at a time, masking the last word of a
// prefix.
func (a *assembler) prefixTests(ps []netip.Prefix, off uint32, pass, fail label) {
	for _, p := range ps {
		if p.Bits() == 0 {
			a.jump(pass)
			return
		}
		b := p.Addr().AsSlice()
		nextPrefix := a.newLabel()
		words := (p.Bits() + 31) / 32
		for w := range words {
			val := binary.BigEndian.Uint32(b[4*w:])
			a.ins(bpf.LoadAbsolute{Off: off + uint32(4*w), Size: 4})
			if bits := p.Bits() - 32*w; bits < 32 {
				mask := ^uint32(0) << (32 - bits)
				a.ins(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
				val &= mask
			}
			t := next
			if w == words-1 {
				t = pass
			}
			a.jif(bpf.JumpEqual, val, t, nextPrefix)
		}
		a.mark(nextPrefix)
	}
	a.jump(fail)
}

type portTarget struct {
	port uint16
	to   label
}

// leafPorts is how many ports a leaf of the search tree tests one after
// the other.
const leafPorts = 8

// portTree emits a binary search over ports (sorted, distinct), A
// holding the port: each port jumps to its target, anything else to
// reject.
func (a *assembler) portTree(ports []portTarget, reject label) {
	if len(ports) <= leafPorts {
		for i, p := range ports {
			f := next
			if i == len(ports)-1 {
				f = reject
			}
			a.jif(bpf.JumpEqual, uint32(p.port), p.to, f)
		}
		return
	}
	mid := len(ports) / 2
	right := a.newLabel()
	a.jif(bpf.JumpGreaterThan, uint32(ports[mid-1].port), right, next)
	a.portTree(ports[:mid], reject)
	a.mark(right)
	a.portTree(ports[mid:], reject)
}

func sortedKeys[V any](m map[uint16]V) []uint16 {
	keys := make([]uint16, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

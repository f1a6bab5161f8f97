package rawsock

import (
	"fmt"
	"slices"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"golang.org/x/net/bpf"
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

	protoTCP = uint8(config.TCP)
	protoUDP = uint8(config.UDP)
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
// any header length) and, where every door on a TCP port requires some
// flags, only packets that carry them. IPv6 packets with extension headers
// are kept whole for the decoder to walk. The program is a superset of
// what the source reports: the decoder and the port tables decide.
func Program(spec capture.Spec) ([]bpf.Instruction, error) {
	return program(spec, true)
}

// program builds the filter; without the prologue it runs in bpf.VM,
// which cannot evaluate ancillary loads. When testing TCP flags in the
// kernel makes the program too long (many ports, each with its own mix of
// doors), the flags are left to Go.
func program(spec capture.Spec, prologue bool) ([]bpf.Instruction, error) {
	prog, err := build(spec, prologue, true)
	if err != nil || len(prog) <= MaxInstructions {
		return prog, err
	}
	prog, err = build(spec, prologue, false)
	if err != nil {
		return nil, err
	}
	if len(prog) > MaxInstructions {
		return nil, fmt.Errorf("rawsock: the filter for %d ports needs %d instructions, more than the kernel's %d",
			len(spec.Ports), len(prog), MaxInstructions)
	}
	return prog, nil
}

func build(spec capture.Spec, prologue, flags bool) ([]bpf.Instruction, error) {
	type class = flagClass
	tcpClass := map[uint16]class{}
	udpPorts := map[uint16]bool{}
	for _, p := range spec.Ports {
		switch p.Proto {
		case config.TCP:
			var c class
			if flags {
				c = mustFlags(p.Flags)
			}
			if old, ok := tcpClass[p.Port]; ok {
				// A port listed twice: keep what both demand.
				c = class{c.set & old.set, c.unset & old.unset}
			}
			tcpClass[p.Port] = c
		case config.UDP:
			udpPorts[p.Port] = true
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

	// TCP: X is the offset of the transport header. Each port leads to
	// the flag test its doors share.
	if len(tcpClass) > 0 {
		a.mark(tcpL)
		a.ins(bpf.LoadIndirect{Off: 2, Size: 2})
		classes := map[class]label{}
		var order []class
		var targets []portTarget
		for _, port := range sortedKeys(tcpClass) {
			c := tcpClass[port]
			l, ok := classes[c]
			if !ok {
				if c == (class{}) {
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
			a.ins(bpf.LoadIndirect{Off: 13, Size: 1})
			if c.unset != 0 {
				a.jif(bpf.JumpBitsSet, uint32(c.unset), reject, next)
			}
			if c.set != 0 {
				a.ins(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: uint32(c.set)})
				a.jif(bpf.JumpEqual, uint32(c.set), accept, reject)
			} else {
				a.jump(accept)
			}
		}
	}

	if len(udpPorts) > 0 {
		a.mark(udpL)
		a.ins(bpf.LoadIndirect{Off: 2, Size: 2})
		var targets []portTarget
		for _, port := range sortedKeys(udpPorts) {
			targets = append(targets, portTarget{port, accept})
		}
		a.portTree(targets, reject)
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
func mustFlags(flags []config.Flags) (c flagClass) {
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

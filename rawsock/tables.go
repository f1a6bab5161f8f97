package rawsock

import (
	"net/netip"
	"slices"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// tables answer, for a decoded packet, whether some door knocks there. They
// are built once per Spec and never modified, so the readers share them
// through an atomic pointer.
type tables struct {
	// has holds a bit per port, [0] for TCP and [1] for UDP: most
	// packets are turned away with one load.
	has   [2][65536 / 64]uint64
	ports map[portKey]*portInfo
}

type portKey struct {
	proto wire.Proto
	port  uint16
}

type portInfo struct {
	// anyFlags is true when some door takes any TCP flags (or the port
	// lists none).
	anyFlags bool
	flags    []wire.FlagFilter
	// targets are the only destinations of interest; nil means the
	// host's own addresses.
	targets []netip.Addr
}

func protoIndex(p wire.Proto) int {
	if p == wire.UDP {
		return 1
	}
	return 0
}

func newTables(spec capture.Spec) *tables {
	t := &tables{ports: make(map[portKey]*portInfo, len(spec.Ports))}
	anyTarget := map[portKey]bool{}
	for _, p := range spec.Ports {
		if p.Proto != wire.TCP && p.Proto != wire.UDP {
			continue
		}
		k := portKey{p.Proto, p.Port}
		info := t.ports[k]
		if info == nil {
			info = &portInfo{}
			t.ports[k] = info
			t.has[protoIndex(p.Proto)][p.Port/64] |= 1 << (p.Port % 64)
		}
		if len(p.Flags) == 0 {
			info.anyFlags = true
		}
		for _, f := range p.Flags {
			if f == (wire.FlagFilter{}) {
				info.anyFlags = true
			}
			if !slices.Contains(info.flags, f) {
				info.flags = append(info.flags, f)
			}
		}
		if len(p.Targets) == 0 {
			anyTarget[k] = true
		}
		for _, a := range p.Targets {
			a = a.WithZone("").Unmap()
			if !slices.Contains(info.targets, a) {
				info.targets = append(info.targets, a)
			}
		}
	}
	for k := range anyTarget {
		t.ports[k].targets = nil
	}
	return t
}

// netView is what the source knows of the host's network: its own
// addresses. It is replaced, never modified.
type netView struct {
	locals map[netip.Addr]struct{}
}

// verdict is what became of a packet.
type verdict uint8

const (
	verdictEvent     verdict = iota // report it
	verdictMalformed                // Decode refused it
	verdictIgnored                  // well formed, but not a knock here
)

// judge decodes the cooked packet b and decides whether it is a knock.
// pkttype and ethProto are the sll_pkttype and sll_protocol (host order)
// the kernel reported with it. It does not allocate.
func judge(b []byte, pkttype uint8, ethProto uint16, t *tables, v *netView) (capture.Event, verdict) {
	ev, ok := Decode(b)
	if !ok {
		return ev, verdictMalformed
	}
	// The program already checked both; a packet queued before a filter
	// change, or a kernel without the ancillary loads, must not slip
	// through.
	if pkttype != packetHost || (ethProto == ethPIPv4) != ev.Dst.Is4() {
		return ev, verdictIgnored
	}
	pi := protoIndex(ev.Proto)
	if t.has[pi][ev.Port/64]&(1<<(ev.Port%64)) == 0 {
		return ev, verdictIgnored
	}
	info := t.ports[portKey{ev.Proto, ev.Port}]
	if info == nil {
		return ev, verdictIgnored
	}
	if ev.Proto == wire.TCP && !info.anyFlags && !matchAny(info.flags, ev.Flags) {
		return ev, verdictIgnored
	}
	if info.targets != nil {
		if !slices.Contains(info.targets, ev.Dst) {
			return ev, verdictIgnored
		}
	} else if _, ok := v.locals[ev.Dst]; !ok {
		return ev, verdictIgnored
	}
	return ev, verdictEvent
}

func matchAny(flags []wire.FlagFilter, f uint8) bool {
	for _, fl := range flags {
		if fl.Match(f) {
			return true
		}
	}
	return false
}

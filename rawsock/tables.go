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
	return ev, t.judge(&ev, v)
}

// judge decides whether the decoded packet ev is a knock. A nil v takes
// every destination as one of the host's addresses.
func (t *tables) judge(ev *capture.Event, v *netView) verdict {
	pi := protoIndex(ev.Proto)
	if t.has[pi][ev.Port/64]&(1<<(ev.Port%64)) == 0 {
		return verdictIgnored
	}
	info := t.ports[portKey{ev.Proto, ev.Port}]
	if info == nil {
		return verdictIgnored
	}
	if ev.Proto == wire.TCP && !info.anyFlags && !matchAny(info.flags, ev.Flags) {
		return verdictIgnored
	}
	if info.targets != nil {
		if !slices.Contains(info.targets, ev.Dst) {
			return verdictIgnored
		}
	} else if v != nil {
		if _, ok := v.locals[ev.Dst]; !ok {
			return verdictIgnored
		}
	}
	return verdictEvent
}

// Filter decides, as the raw backend does, which packets are knocks for a
// Spec, for packets that come from elsewhere than its sockets (knockd
// --replay reads them from a capture file). Its methods do not allocate.
type Filter struct {
	t        *tables
	ipv4Only bool
}

// NewFilter returns the Filter for spec.
func NewFilter(spec capture.Spec) *Filter {
	return &Filter{t: newTables(spec), ipv4Only: spec.IPv4Only}
}

// Judge decodes b, which starts at its IPv4 or IPv6 header, as the raw
// backend's sockets do, and reports whether it is a knock the backend
// would report for the Spec: ok. Since a capture file does not say which
// addresses were the host's, any destination counts as the host's own,
// unless the port has Targets. malformed reports that b did not decode.
func (f *Filter) Judge(b []byte) (ev capture.Event, ok, malformed bool) {
	ev, decoded := Decode(b)
	if !decoded {
		return ev, false, true
	}
	if f.ipv4Only && ev.Dst.Is6() {
		return ev, false, false
	}
	return ev, f.t.judge(&ev, nil) == verdictEvent, false
}

func matchAny(flags []wire.FlagFilter, f uint8) bool {
	for _, fl := range flags {
		if fl.Match(f) {
			return true
		}
	}
	return false
}

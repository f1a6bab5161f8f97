// Package capture defines what a capture backend reports and what it is
// asked to watch.
package capture

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/knock-go/knock/config"
)

// Event is one candidate knock: a packet or connection from Src to Dst on
// Port.
type Event struct {
	// Time is when the packet arrived.
	Time time.Time
	// Src is the knocker's address; Dst the address it knocked on. IPv4
	// addresses are plain 4-byte addresses, never IPv4-mapped IPv6.
	Src, Dst netip.Addr
	// Port is the destination port.
	Port uint16
	// Proto is TCP or UDP.
	Proto config.Proto
	// Flags are the TCP header flags. Valid iff Proto == TCP; the
	// listener backend always reports config.SYN.
	Flags uint8
}

// Port is one (protocol, port) that some door knocks on.
type Port struct {
	Proto config.Proto
	Port  uint16
	// Targets are the only destination addresses of interest, from the
	// doors' Target directives. Nil means any of the host's addresses.
	Targets []netip.Addr
	// Flags lists the TCPFlags of the doors using this port; a TCP
	// packet is of interest if it matches any of them. Valid iff Proto
	// == TCP.
	Flags []config.Flags
	// Doors names the doors that knock here, for error messages.
	Doors []string
}

// Spec is what a source watches.
type Spec struct {
	// Ports are the knock ports, sorted by protocol then port, each once.
	Ports []Port
	// Interfaces restricts capture to these interfaces; nil, or the
	// single name "any", means all of them.
	Interfaces []string
	// IPv4Only ignores IPv6 (knockd -4).
	IPv4Only bool
}

// NewSpec collects the ports of doors into a Spec.
func NewSpec(doors []*config.Door, ifaces []string, ipv4Only bool) Spec {
	type key struct {
		proto config.Proto
		port  uint16
	}
	idx := map[key]int{}
	var ports []Port
	anyTarget := map[key]bool{}
	for _, d := range doors {
		seen := map[key]bool{}
		for _, k := range d.Sequence {
			kk := key{k.Proto, k.Port}
			if seen[kk] {
				continue
			}
			seen[kk] = true
			i, ok := idx[kk]
			if !ok {
				i = len(ports)
				idx[kk] = i
				ports = append(ports, Port{Proto: k.Proto, Port: k.Port})
			}
			p := &ports[i]
			p.Doors = append(p.Doors, d.Name)
			if k.Proto == config.TCP && !slices.Contains(p.Flags, d.Flags) {
				p.Flags = append(p.Flags, d.Flags)
			}
			if !d.Target.IsValid() {
				anyTarget[kk] = true
			} else if !slices.Contains(p.Targets, d.Target) {
				p.Targets = append(p.Targets, d.Target)
			}
		}
	}
	for i := range ports {
		if anyTarget[key{ports[i].Proto, ports[i].Port}] {
			ports[i].Targets = nil
		}
	}
	slices.SortFunc(ports, func(a, b Port) int {
		if a.Proto != b.Proto {
			return int(a.Proto) - int(b.Proto)
		}
		return int(a.Port) - int(b.Port)
	})
	return Spec{Ports: ports, Interfaces: ifaces, IPv4Only: ipv4Only}
}

// Source is a capture backend. Open every socket in the constructor, so
// that a permission error stops start-up, then call Run.
type Source interface {
	// Run sends events to out until ctx ends, then returns nil; it
	// returns an error only when capture cannot go on. It must not block
	// forever on out once ctx is done.
	Run(ctx context.Context, out chan<- Event) error
	// Update changes what the source watches (a reload, or a one-time
	// sequence that moved on). It may be called while Run runs. On error
	// the source keeps watching what it watched before.
	Update(Spec) error
	// Name is the backend's name for log lines: "listener" or "raw".
	Name() string
}

// Package capture defines what a capture backend reports and what it is
// asked to watch.
//
// Its API serves this module's commands and is not yet stable.
package capture

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
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
	Proto wire.Proto
	// Flags are the TCP header flags. Valid iff Proto == TCP; the
	// listener backend always reports config.SYN.
	Flags uint8
}

// Port is one (protocol, port) that some door knocks on.
type Port struct {
	Proto wire.Proto
	Port  uint16
	// Targets are the only destination addresses of interest, from the
	// doors' Target directives. Nil means any of the host's addresses.
	Targets []netip.Addr
	// Sources are the only source prefixes of interest: the union of the
	// Source lists of the doors that knock here, when each of them has
	// one. Nil means any source. A packet from elsewhere counts for
	// nothing, and a source may drop it.
	Sources []netip.Prefix
	// Flags lists the TCPFlags of the doors using this port; a TCP
	// packet is of interest if it matches any of them. Valid iff Proto
	// == TCP.
	Flags []wire.FlagFilter
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
		proto wire.Proto
		port  uint16
	}
	idx := map[key]int{}
	var ports []Port
	anyTarget := map[key]bool{}
	anySource := map[key]bool{}
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
			// A time-derived door is there once per step it accepts.
			if !slices.Contains(p.Doors, d.Name) {
				p.Doors = append(p.Doors, d.Name)
			}
			if k.Proto == wire.TCP && !slices.Contains(p.Flags, d.Flags) {
				p.Flags = append(p.Flags, d.Flags)
			}
			if !d.Target.IsValid() {
				anyTarget[kk] = true
			} else if !slices.Contains(p.Targets, d.Target) {
				p.Targets = append(p.Targets, d.Target)
			}
			if d.Sources == nil {
				anySource[kk] = true
			}
			for _, s := range d.Sources {
				if !slices.Contains(p.Sources, s) {
					p.Sources = append(p.Sources, s)
				}
			}
		}
	}
	for i := range ports {
		if anyTarget[key{ports[i].Proto, ports[i].Port}] {
			ports[i].Targets = nil
		}
		if anySource[key{ports[i].Proto, ports[i].Port}] {
			ports[i].Sources = nil
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

// Source is a capture backend. Its life has three steps, the same for
// every backend:
//
//   - The constructor (New) opens every socket the Spec needs, so that a
//     permission error or a port in use stops start-up there.
//   - Run serves: it sends what the sockets see until ctx ends or Close is
//     called. Run is called at most once; when it returns, the source is
//     closed (as by Close).
//   - Close closes every socket and makes a running Run return. It is
//     idempotent, and safe before, during or after Run: the owner calls it
//     in every case, also when Run never ran.
type Source interface {
	// Run sends batches of events to out until ctx ends or Close is
	// called, then closes the source and returns nil; it returns an
	// error only when capture cannot go on, or when the source was
	// already closed or Run already called. It must not block forever on
	// out once ctx is done. Each batch holds at least one event, and the
	// receiver releases it.
	Run(ctx context.Context, out chan<- *Batch) error
	// Update changes what the source watches (a reload, or a one-time
	// sequence that moved on). It may be called while Run runs. On error
	// the source keeps watching what it watched before.
	Update(Spec) error
	// Close closes every socket; see the lifecycle above. It returns
	// nil.
	Close() error
	// Name is the backend's name for log lines: "listener" or "raw".
	Name() string
}

// A Limiter is a Source that cannot serve every door: Unsupported says
// why it can never open d, or returns "" when it can. A Source that does
// not implement Limiter serves every door.
type Limiter interface {
	Unsupported(d *config.Door) string
}

// A Describer is a Source that says what it watches, for knockd -D: the
// addresses, sockets or filter it uses now, one line each.
type Describer interface {
	Describe() []string
}

// A Counter is a Source that counts what it sees.
type Counter interface {
	Stats() Stats
}

// Stats are a Source's counters since it was created. A backend counts
// what it can see and leaves the other fields zero.
type Stats struct {
	// Received counts the packets read from the sockets (raw: those the
	// BPF program kept; listener: UDP datagrams).
	Received uint64
	// Accepted counts TCP connections accepted, and reset (listener).
	Accepted uint64
	// Events counts the packets reported as events (raw).
	Events uint64
	// Dropped counts knocks lost on the way: the packets the kernel
	// dropped because a socket's queue was full (raw, from
	// PACKET_STATISTICS), or the events abandoned because the source was
	// stopping while they waited for room (listener).
	Dropped uint64
	// Waited counts events that found no room on out and waited; a
	// non-zero value means the consumer falls behind (listener).
	Waited uint64
	// Malformed counts the packets that did not decode, fragments other
	// than the first among them (raw).
	Malformed uint64
	// Ignored counts well-formed packets that are no knock here: no door
	// wants their port, flags or destination address (raw).
	Ignored uint64
	// Errors counts accept and read errors after which the socket went
	// on (listener).
	Errors uint64
}

// A Batch carries events from a source to the matcher in one channel
// operation, so that a flood costs one hand-over per batch rather than
// one per packet. Batches come from a Pool; the receiver calls Release
// when it is done with the events.
type Batch struct {
	// Events are in arrival order.
	Events []Event
	pool   *Pool
}

// Release hands b back to its pool. Neither b nor its events may be used
// after that.
func (b *Batch) Release() {
	if b.pool == nil {
		return
	}
	b.Events = b.Events[:0]
	b.pool.free <- b
}

// Pool is a fixed set of batches. A source that runs out waits for the
// receiver to release one, so a slow receiver slows its source down
// instead of making it allocate: the kernel's buffers then absorb, and
// count, what overflows.
type Pool struct {
	free chan *Batch
	size int
}

// NewPool returns a pool of n batches of up to size events each.
func NewPool(n, size int) *Pool {
	p := &Pool{free: make(chan *Batch, n), size: size}
	for range n {
		p.free <- &Batch{Events: make([]Event, 0, size), pool: p}
	}
	return p
}

// Size is the number of events a batch holds.
func (p *Pool) Size() int { return p.size }

// Get returns an empty batch, waiting for one to be released if they are
// all in use. It returns nil when ctx ends first.
func (p *Pool) Get(ctx context.Context) *Batch {
	select {
	case b := <-p.free:
		return b
	default:
	}
	select {
	case b := <-p.free:
		return b
	case <-ctx.Done():
		return nil
	}
}

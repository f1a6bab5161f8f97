package rawsock

import (
	"context"
	"sync/atomic"

	"github.com/knock-go/knock/capture"
)

// Options configures a Source. The zero value is valid.
type Options struct {
	// Logf receives the few lines about the source's life: an interface
	// it waits for, attaches to, sees go down or come up, or loses. Nil
	// discards them. It is never called per packet.
	Logf func(format string, args ...any)
}

// Source captures knocks from AF_PACKET sockets. It implements
// capture.Source; its methods may be called from several goroutines.
//
// It opens one cooked socket per IP version, for all interfaces or per
// named interface, bound to that ethertype: the kernel then delivers
// packets to it where it delivers them to its own IP stack, on the
// interface IP sees them on, after VLAN tags, bridges and bonds are dealt
// with. So each received packet is seen once (a knock on loopback too),
// on links with or without an Ethernet header (ppp, tun, WireGuard), and
// the packets the host sends are never seen. A packet counts when it
// decodes, a door knocks on its protocol and port with flags that match,
// and it is addressed to one of the host's addresses (followed through
// rtnetlink as they change) or to the port's Targets.
type Source struct {
	opts Options

	// The per-packet state: read by every reader goroutine with one
	// atomic load each, replaced (never modified) on change.
	tables atomic.Pointer[tables]
	view   atomic.Pointer[netView]

	received, dropped, events, malformed, ignored atomic.Uint64

	sys system
}

var (
	_ capture.Source    = (*Source)(nil)
	_ capture.Counter   = (*Source)(nil)
	_ capture.Describer = (*Source)(nil)
)

// New opens the sockets that spec asks for, with the BPF program attached
// before they are bound, and starts following the host's interfaces and
// addresses. Packets are queued from then on; Run delivers them.
//
// Capture needs CAP_NET_RAW: without it New returns an error for which
// errors.Is(err, os.ErrPermission) holds and that says how to grant it.
// An interface named in spec that does not exist yet is not an error:
// the source waits for it (and logs so).
func New(spec capture.Spec, opts Options) (*Source, error) {
	s := &Source{opts: opts}
	if err := s.open(spec); err != nil {
		return nil, err
	}
	return s, nil
}

// Name returns "raw".
func (s *Source) Name() string { return "raw" }

// Run sends the knocks it sees to out until ctx ends or Close is called,
// and then closes the source and returns nil. It returns an error when
// capture cannot go on, or when the source is closed or Run already ran:
// Run serves once (see capture.Source).
func (s *Source) Run(ctx context.Context, out chan<- *capture.Batch) error {
	return s.run(ctx, out)
}

// Update makes the source watch spec instead: it replaces the BPF program
// on the live sockets and the port tables at once, and attaches to or
// leaves interfaces as spec.Interfaces changed. On error nothing changes.
func (s *Source) Update(spec capture.Spec) error { return s.update(spec) }

// Close closes every socket and makes Run return. Close is idempotent.
func (s *Source) Close() error { return s.close() }

// Stats returns the counters since New: Received, Dropped, Events,
// Malformed and Ignored. The kernel's drop counter is read from the live
// sockets at the time of the call.
func (s *Source) Stats() capture.Stats {
	s.pollKernelStats()
	return capture.Stats{
		Received:  s.received.Load(),
		Dropped:   s.dropped.Load(),
		Events:    s.events.Load(),
		Malformed: s.malformed.Load(),
		Ignored:   s.ignored.Load(),
	}
}

// Available reports whether this process may open an AF_PACKET socket: it
// opens one and closes it at once. The error says why not, and how to
// fix it, as New's would.
func Available() error { return available() }

func (s *Source) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

package listener

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// Options configure a Source. The zero value is valid.
type Options struct {
	// Logf, when set, receives lifecycle lines (sockets opened and
	// closed, IPv6 missing, accept errors and recovery). Nil means
	// silent. It is never called once per knock.
	Logf func(format string, args ...any)
	// Hold is how long a knock is held back so that knocks read by the
	// goroutines of different sockets leave in the order they arrived
	// (see Run). Zero means DefaultHold; a negative value sends each
	// knock as soon as it is read, in whatever order that is.
	Hold time.Duration
}

// Source is the listener capture backend. It implements capture.Source.
// Create it with New.
type Source struct {
	logf func(format string, args ...any)
	hold time.Duration

	mu       sync.Mutex
	socks    map[key]*sock
	closed   bool
	done     chan struct{} // closed by Close
	running  bool
	ctx      context.Context // Run's, valid iff running
	in       chan knock      // to merge; valid iff running
	wg       sync.WaitGroup  // Run's goroutines
	v6Logged bool
	failc    chan error // see fail
	loop     *tcpLoop   // see tcp_*.go

	accepted, received, waited, dropped, errs atomic.Uint64
}

var (
	_ capture.Source    = (*Source)(nil)
	_ capture.Limiter   = (*Source)(nil)
	_ capture.Counter   = (*Source)(nil)
	_ capture.Describer = (*Source)(nil)
)

// Describe returns, for knockd -D, the sockets open now, one a line:
// "listening socket: tcp 0.0.0.0:7000 for door openSSH".
func (s *Source) Describe() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.socks))
	for _, sk := range s.socks {
		out = append(out, fmt.Sprintf("listening socket: %s for %s", sk.key, doorList(sk.doors)))
	}
	slices.Sort(out)
	return out
}

var errClosed = errors.New("listener: source is closed")

// New opens every socket that spec needs and returns a Source ready to
// Run. When any socket cannot be opened it closes the others and returns
// the error (an *OpenError for a socket, with the doors, the port and the
// fix in its message).
//
// Sockets are one TCP listener or UDP socket per protocol, port and
// address. The addresses are a port's Targets when it has any; otherwise
// every address of spec.Interfaces; otherwise the wildcards 0.0.0.0 and
// [::] (each on its own socket; [::] is left out with spec.IPv4Only, or
// with a log line when the host has no IPv6).
func New(spec capture.Spec, opts Options) (*Source, error) {
	s := &Source{
		logf:  opts.Logf,
		hold:  opts.Hold,
		socks: map[key]*sock{},
		done:  make(chan struct{}),
		failc: make(chan error, 1),
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.hold == 0 {
		s.hold = DefaultHold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.apply(spec); err != nil {
		return nil, err
	}
	return s, nil
}

// Name returns "listener".
func (s *Source) Name() string { return "listener" }

// Stats returns the counters so far: Accepted (TCP connections accepted
// and reset), Received (UDP datagrams), Waited (events that found no room
// on out, or on the way to it, and waited: the consumer falls behind),
// Dropped (events abandoned because the source was stopping, or a socket
// was closed by Update, while they waited for room) and Errors (accept
// and read errors; the socket goes on after a pause).
func (s *Source) Stats() capture.Stats {
	return capture.Stats{
		Accepted: s.accepted.Load(),
		Received: s.received.Load(),
		Waited:   s.waited.Load(),
		Dropped:  s.dropped.Load(),
		Errors:   s.errs.Load(),
	}
}

// Run reports knocks on out until ctx ends or Close is called, then
// closes every socket, waits for the goroutines it started and returns
// nil. It returns an error only when capture cannot go on (the Linux
// accept loop failed). It can be called once.
//
// Each UDP socket has a goroutine of its own. On Linux one goroutine
// accepts on every TCP listener, in the order the connections arrived;
// elsewhere each listener has its own. Knocks are held for Options.Hold
// and leave in the order they arrived, which goroutines reading different
// sockets do not keep by themselves.
//
// A knock waits for room on out rather than being dropped, so that no
// knock is lost to a burst; meanwhile the kernel queues further
// connections (listen backlog) and datagrams (socket buffer). Only a
// consumer that stops reading for long loses knocks, and then in the
// kernel, without stalling anything but the sockets. The wait ends when
// ctx ends; knocks still waiting then are counted in Stats.Dropped.
func (s *Source) Run(ctx context.Context, out chan<- *capture.Batch) error {
	if out == nil {
		return errors.New("listener: Run needs an out channel")
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return errClosed
	case s.running:
		s.mu.Unlock()
		return errors.New("listener: Run called twice")
	}
	s.running = true
	s.ctx = ctx
	s.in = make(chan knock, 256)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.merge(ctx, s.in, out, max(s.hold, 0))
	}()
	err := s.runTCP()
	if err == nil {
		for _, sk := range s.sorted() {
			s.start(sk)
		}
	}
	s.mu.Unlock()

	if err == nil {
		select {
		case <-ctx.Done():
		case <-s.done:
		case err = <-s.failc:
		}
	}
	s.Close()
	s.wg.Wait()
	s.finishTCP()
	s.dropped.Add(uint64(len(s.in))) // nobody sends any more
	return err
}

// Update changes the sockets to those spec needs. It opens the new ones
// first; if one fails it closes those it opened and returns the error,
// and the source goes on as before. Then it closes the sockets no longer
// needed. Sockets in both the old and the new spec stay open throughout.
//
// A socket that conflicts with one that goes away (a port moving from the
// wildcard to a Target, or back) can only be opened once the old one is
// closed; if it then fails, the old one is opened again.
func (s *Source) Update(spec capture.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.apply(spec)
}

// Close closes every socket and waits for the goroutines of Run to end;
// Run then returns. It is safe to call more than once and from several
// goroutines; it always returns nil.
func (s *Source) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
		if s.running {
			s.closeTCP()
		}
		for _, sk := range s.sorted() {
			sk.close()
			s.logf("listener: stopped listening on %s", sk.key)
		}
		s.socks = nil
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// apply moves the open sockets to those spec needs. s.mu is held.
func (s *Source) apply(spec capture.Spec) error {
	want, err := s.plan(spec)
	if err != nil {
		return err
	}
	wanted := make(map[key]bool, len(want))
	for _, b := range want {
		wanted[b.key] = true
	}
	var leaving []*sock
	for _, sk := range s.sorted() {
		if !wanted[sk.key] {
			leaving = append(leaving, sk)
		}
	}

	// Open what is new while the old sockets still serve. A socket in
	// the way of one that is leaving waits for the second step.
	var opened []*sock
	var blocked []*binding
	undo := func() {
		for _, sk := range opened {
			sk.close()
		}
	}
	for _, b := range want {
		if sk := s.socks[b.key]; sk != nil {
			sk.doors = b.doors
			continue
		}
		sk, err := s.open(b)
		switch {
		case err == nil:
			opened = append(opened, sk)
			continue
		case b.addr == netip.IPv6Unspecified() && noIPv6(err):
			if !s.v6Logged {
				s.v6Logged = true
				s.logf("listener: no IPv6 on this host (%v); listening on IPv4 only", errors.Unwrap(err))
			}
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) && slices.ContainsFunc(leaving, func(sk *sock) bool { return sk.key.conflicts(b.key) }) {
			blocked = append(blocked, b)
			continue
		}
		undo()
		return err
	}

	if len(blocked) > 0 {
		var inWay []*sock
		for _, sk := range leaving {
			if slices.ContainsFunc(blocked, func(b *binding) bool { return sk.key.conflicts(b.key) }) {
				inWay = append(inWay, sk)
			}
		}
		for _, sk := range inWay {
			s.stop(sk)
		}
		for _, b := range blocked {
			sk, err := s.open(b)
			if err == nil {
				opened = append(opened, sk)
				continue
			}
			undo()
			// Put back what was in the way, so that the source keeps
			// watching what it watched before.
			var errs []error
			for _, old := range inWay {
				sk, rerr := s.open(&binding{key: old.key, doors: old.doors})
				if rerr != nil {
					delete(s.socks, old.key)
					errs = append(errs, rerr)
					continue
				}
				s.socks[old.key] = sk
				s.announce(sk)
				if s.running {
					s.start(sk)
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("%w (and could not restore the previous sockets: %w)", err, errors.Join(errs...))
			}
			return err
		}
		for _, sk := range inWay {
			delete(s.socks, sk.key)
		}
	}

	for _, sk := range leaving {
		if s.socks[sk.key] == sk {
			s.stop(sk)
			delete(s.socks, sk.key)
		}
	}
	for _, sk := range opened {
		s.socks[sk.key] = sk
		s.announce(sk)
		if s.running {
			s.start(sk)
		}
	}
	return nil
}

func (s *Source) announce(sk *sock) {
	s.logf("listener: listening on %s for %s", sk.key, doorList(sk.doors))
}

// stop closes sk and waits until nothing reads it any more. s.mu is held;
// the goroutines never take it.
func (s *Source) stop(sk *sock) {
	if sk.tcp != nil {
		s.stopTCP(sk)
	}
	sk.close()
	if sk.done != nil {
		<-sk.done
	}
	s.logf("listener: stopped listening on %s", sk.key)
}

// start serves sk. s.mu is held and s.running is true.
func (s *Source) start(sk *sock) {
	if sk.tcp != nil {
		s.startTCP(sk)
		return
	}
	s.goServe(sk, s.serveUDP)
}

// goServe runs serve for sk in a goroutine of its own.
func (s *Source) goServe(sk *sock, serve func(context.Context, chan<- knock, *sock)) {
	sk.done = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(sk.done)
		serve(s.ctx, s.in, sk)
	}()
}

// fail ends Run with err, when capture cannot go on.
func (s *Source) fail(err error) {
	select {
	case s.failc <- err:
	default:
	}
}

func (s *Source) sorted() []*sock {
	socks := make([]*sock, 0, len(s.socks))
	for _, sk := range s.socks {
		socks = append(socks, sk)
	}
	slices.SortFunc(socks, func(a, b *sock) int { return compareKeys(a.key, b.key) })
	return socks
}

func doorList(doors []string) string {
	switch len(doors) {
	case 0:
		return "no door"
	case 1:
		return "door " + doors[0]
	}
	return fmt.Sprintf("doors %v", doors)
}

// Unsupported is the function Unsupported, for capture.Limiter.
func (s *Source) Unsupported(d *config.Door) string { return Unsupported(d) }

// Unsupported returns why door d can never open on the listener backend,
// or "" when it can. The listener reports every accepted connection as a
// plain SYN (flags SYN only), so a door whose TCPFlags rejects a plain SYN
// (ack, fin, rst, syn,ack, !syn, ...) waits forever for its TCP knocks.
// A door without TCP knocks is not affected, unless it is a one-time door
// (a later line may bring TCP knocks). The reason does not name the door;
// the caller does.
func Unsupported(d *config.Door) string {
	if d.Flags.Match(wire.SYN) {
		return ""
	}
	tcp := d.OneTimeFile != "" || slices.ContainsFunc(d.Sequence, func(k wire.Knock) bool { return k.Proto == wire.TCP })
	if !tcp {
		return ""
	}
	return fmt.Sprintf("TCPFlags = %s never matches on the listener backend, which sees only accepted connections and reports each as a plain SYN; use --backend raw, or remove TCPFlags", d.Flags)
}

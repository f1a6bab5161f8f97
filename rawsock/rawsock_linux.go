//go:build linux

package rawsock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/knock-go/knock/capture"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// system is the Linux state of a Source.
type system struct {
	mu     sync.Mutex
	spec   capture.Spec
	prog   []bpf.RawInstruction
	names  []string // the interfaces to watch; nil for all
	socks  map[sockKey]*sock
	ifs    map[string]*ifaceState // per name in names
	nl     *rtnl
	net    *netState
	closed bool
	run    *runState // nil when Run is not running
}

// ifaceState is what was last logged about a named interface.
type ifaceState struct {
	index    int32 // 0 while not attached
	up       bool
	waiting  bool // "waiting for" was logged
	failed   bool // an attach error was logged
	attached bool
}

// runState belongs to one call of Run.
type runState struct {
	ctx      context.Context
	cancel   context.CancelFunc
	out      chan<- *capture.Batch
	pool     *capture.Pool
	wg       sync.WaitGroup
	errc     chan error
	stopping bool               // guarded by system.mu
	readers  map[*sock]struct{} // sockets with a reader; guarded by system.mu
}

func (r *runState) fail(err error) {
	select {
	case r.errc <- err:
	default:
	}
}

var errClosed = errors.New("rawsock: source is closed")

// compiled is a Spec made ready for use.
type compiled struct {
	spec   capture.Spec
	prog   []bpf.RawInstruction
	tables *tables
	names  []string
}

func compile(spec capture.Spec) (*compiled, error) {
	names, err := interfaceNames(spec.Interfaces)
	if err != nil {
		return nil, err
	}
	ins, err := Program(spec)
	if err != nil {
		return nil, err
	}
	prog, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("rawsock: assembling filter: %w", err)
	}
	return &compiled{spec: spec, prog: prog, tables: newTables(spec), names: names}, nil
}

func (s *Source) open(spec capture.Spec) error {
	c, err := compile(spec)
	if err != nil {
		return err
	}
	nl, err := openRTNL()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := nl.sync(ctx)
	if err != nil {
		nl.Close()
		return fmt.Errorf("rawsock: reading interfaces and addresses: %w", err)
	}

	sys := &s.sys
	sys.mu.Lock()
	defer sys.mu.Unlock()
	sys.spec, sys.prog, sys.names = c.spec, c.prog, c.names
	sys.nl, sys.net = nl, st
	sys.socks = map[sockKey]*sock{}
	sys.ifs = map[string]*ifaceState{}
	s.tables.Store(c.tables)
	s.view.Store(st.view())
	if err := s.reconcileLocked(true); err != nil {
		s.closeLocked()
		return err
	}
	if len(sys.socks) == 0 {
		// Waiting for every named interface: still fail now rather
		// than when one appears.
		if err := available(); err != nil {
			s.closeLocked()
			return err
		}
	}
	return nil
}

// protos returns the ethertypes to open sockets for.
func (sys *system) protos() []uint16 {
	if sys.spec.IPv4Only {
		return []uint16{unix.ETH_P_IP}
	}
	return []uint16{unix.ETH_P_IP, unix.ETH_P_IPV6}
}

// reconcileLocked makes the open sockets match the spec and the links:
// one socket per protocol per named interface that exists (or for all
// interfaces), bound to its current index. In strict mode (New, Update)
// an interface that cannot be opened is an error and nothing changes,
// nothing is logged; otherwise (a link appeared) the failure is logged
// and the others go on.
func (s *Source) reconcileLocked(strict bool) error {
	sys := &s.sys
	// Log lines and the state they record wait until the sockets are
	// settled.
	var notes []func()
	note := func(f func()) { notes = append(notes, f) }

	type target struct {
		name  string
		index int32
		up    bool
	}
	var targets []target
	if sys.names == nil {
		targets = append(targets, target{})
	}
	for _, name := range sys.names {
		is := sys.ifs[name]
		if is == nil {
			is = &ifaceState{}
			sys.ifs[name] = is
		}
		index, link, ok := sys.net.lookup(name)
		if is.attached && (!ok || index != is.index) {
			note(func() {
				s.logf("interface %s is gone", name)
				is.attached, is.index = false, 0
			})
		}
		if !ok {
			if !is.waiting {
				note(func() {
					s.logf("waiting for interface %s", name)
					is.waiting = true
				})
			}
			continue
		}
		targets = append(targets, target{name, index, link.up})
	}

	socks := map[sockKey]*sock{}
	var opened []*sock
	for _, t := range targets {
		var mine []*sock
		var err error
		for _, p := range sys.protos() {
			key := sockKey{t.name, p}
			if k := sys.socks[key]; k != nil && k.index == t.index {
				socks[key] = k
				continue
			}
			var k *sock
			if k, err = openSock(key, t.index, sys.prog); err != nil {
				break
			}
			mine = append(mine, k)
		}
		if err != nil {
			for _, k := range mine {
				k.close()
			}
			// A link that vanished since the dump is not worth
			// failing for: rtnetlink is about to say so.
			if strict && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENXIO) {
				for _, k := range opened {
					k.close()
				}
				return err
			}
			if t.name == "" {
				note(func() { s.logf("cannot capture on all interfaces: %v", err) })
			} else if is := sys.ifs[t.name]; !is.failed {
				note(func() {
					s.logf("cannot attach to interface %s: %v", t.name, err)
					is.failed = true
				})
			}
			// Keep whatever this target had; it is tried again on
			// the next link change.
			for _, p := range sys.protos() {
				if k := sys.socks[sockKey{t.name, p}]; k != nil {
					socks[k.key] = k
				}
			}
			continue
		}
		for _, k := range mine {
			socks[k.key] = k
		}
		opened = append(opened, mine...)
		if t.name == "" {
			continue
		}
		is := sys.ifs[t.name]
		switch {
		case len(mine) > 0 || !is.attached:
			note(func() {
				s.logf("attached to interface %s (index %d)", t.name, t.index)
				if !t.up {
					s.logf("interface %s is down", t.name)
				}
				is.attached, is.index, is.up = true, t.index, t.up
				is.waiting, is.failed = false, false
			})
		case is.up != t.up:
			note(func() {
				if t.up {
					s.logf("interface %s is up", t.name)
				} else {
					s.logf("interface %s is down", t.name)
				}
				is.up = t.up
			})
		}
	}

	for key, k := range sys.socks {
		if socks[key] != k {
			s.dropped.Add(k.close())
		}
	}
	sys.socks = socks
	for name := range sys.ifs {
		if !contains(sys.names, name) {
			delete(sys.ifs, name)
		}
	}
	for _, f := range notes {
		f()
	}
	s.startReadersLocked()
	return nil
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// startReadersLocked starts a reader for every socket that lacks one,
// while Run runs.
func (s *Source) startReadersLocked() {
	r := s.sys.run
	if r == nil || r.stopping {
		return
	}
	for _, k := range s.sys.socks {
		if _, ok := r.readers[k]; ok {
			continue
		}
		r.readers[k] = struct{}{}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := s.read(r, k); err != nil {
				r.fail(err)
			}
			// A socket replaced during the run (an interface that
			// came back) must not stay here for the rest of it.
			s.sys.mu.Lock()
			delete(r.readers, k)
			s.sys.mu.Unlock()
		}()
	}
}

// read is a socket's reader: it delivers the knocks it reads to r.out
// until the run ends or the socket is closed.
func (s *Source) read(r *runState, k *sock) error {
	if !k.acquire() {
		return nil
	}
	defer k.release()
	bt := batcher{s: s, r: r}
	defer bt.close()
	if k.ring == nil && k.ringErr != nil {
		s.logf("%s: no receive ring (%v): reading one packet per system call", k.key, k.ringErr)
	}
	// done says whether err from the socket ends the reader, and with
	// what.
	done := func(err error) (bool, error) {
		switch {
		case r.ctx.Err() != nil || k.gone.Load():
			return true, nil
		case err == errWoken:
			return false, nil
		case errors.Is(err, unix.ENETDOWN):
			// The interface went down; the socket carries on when
			// it comes back up.
			return false, nil
		case k.key.name != "" && (errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)):
			// The interface is gone; rtnetlink tells the watcher,
			// which opens a new socket if it returns.
			return true, nil
		}
		return true, fmt.Errorf("rawsock: reading %s: %w", k.key, err)
	}
	var last time.Time // when the socket was last emptied
	for {
		if err := k.wait(); err != nil {
			if stop, err := done(err); stop {
				return err
			}
			continue
		}
		if r.ctx.Err() != nil || k.gone.Load() {
			return nil
		}
		if gap := time.Since(last); gap < minWakeGap {
			// Packets are coming fast: let them gather rather
			// than waking for every few of them.
			time.Sleep(minWakeGap - gap)
		}
		var ok bool
		var err error
		if k.ring != nil {
			ok = drainRing(k, &bt)
		} else {
			ok, err = drainQueue(k, &bt)
		}
		if !ok || !bt.flush() {
			return nil
		}
		if err != nil {
			if stop, err := done(err); stop {
				return err
			}
		}
		last = time.Now()
	}
}

// drainRing reads every packet in the ring, until the socket is closed.
// It hands over what it read at least every batchSize packets, so that a
// flood of packets that are no knock still lets the run end and the
// counters move. It returns false when the run has ended or the socket
// is closed.
func drainRing(k *sock, bt *batcher) bool {
	rg := k.ring
	for n := 1; rg.ready(); n++ {
		if k.gone.Load() {
			return false
		}
		b, pkttype, proto, at := rg.next()
		ok := bt.add(b, pkttype, proto, at)
		rg.release()
		if !ok || n%batchSize == 0 && !bt.flush() {
			return false
		}
	}
	return true
}

// drainQueue is drainRing without a ring: one recvfrom(2) per packet.
// It also returns the socket's error, if reading met one.
func drainQueue(k *sock, bt *batcher) (bool, error) {
	for n := 1; ; n++ {
		if k.gone.Load() {
			return false, nil
		}
		ok, err := k.recv()
		if err != nil || !ok {
			return true, err
		}
		b, pkttype, proto := k.packet()
		if !bt.add(b, pkttype, proto, 0) || n%batchSize == 0 && !bt.flush() {
			return false, nil
		}
	}
}

// batchSize is the most events a reader hands over at once.
const batchSize = 256

// maxAge bounds how long ago an event may be dated, by the kernel's
// timestamp, before the batch it is read in: the ring holds well under a
// second of a flood, so more is a wall clock step, not a wait.
const maxAge = time.Second

// minWakeGap is the shortest time between two wake-ups of a reader. A
// packet that comes after a quiet spell is read at once; packets that
// follow it within minWakeGap wait for the rest of it, and are read
// together. Under a flood a reader then wakes about a thousand times a
// second, with hundreds of packets each time (which the ring holds many
// times over), rather than for every few packets: each wake-up costs
// more than a hundred packets do. A sleep this short lasts about a
// millisecond: the Go runtime's timers wait in whole milliseconds when
// idle.
const minWakeGap = time.Millisecond

// batcher turns a reader's packets into batches of events, and counts
// them. It reads the clock, the tables and the counters once per batch
// rather than once per packet.
type batcher struct {
	s      *Source
	r      *runState
	b      *capture.Batch
	now    time.Time
	nowNs  int64 // now as wall-clock nanoseconds
	tables *tables
	view   *netView
	seen   int // packets since now, tables and view were read
	counts [3]uint64
}

// add judges one packet and keeps its event. at is when the kernel
// received the packet (wall clock, nanoseconds since 1970), 0 if unknown.
// It returns false when the run has ended.
func (bt *batcher) add(b []byte, pkttype uint8, proto uint16, at int64) bool {
	if bt.seen == 0 {
		bt.now = time.Now()
		bt.nowNs = bt.now.UnixNano()
		bt.tables, bt.view = bt.s.tables.Load(), bt.s.view.Load()
	}
	if bt.seen++; bt.seen == batchSize {
		bt.seen = 0
	}
	ev, v := judge(b, pkttype, proto, bt.tables, bt.view)
	bt.counts[v]++
	if v != verdictEvent {
		return true
	}
	if bt.b == nil {
		if bt.b = bt.r.pool.Get(bt.r.ctx); bt.b == nil {
			return false
		}
	}
	ev.Time = bt.now
	if at != 0 {
		// A packet that waited in the ring (the matcher was slow to
		// take its batches) keeps the time it arrived, so that
		// Seq_Timeout counts from there. The kernel's clock is the
		// wall clock: only its distance to now is used, bounded, so
		// that the event keeps the monotonic clock reading of now and
		// a wall clock step changes nothing.
		if age := bt.nowNs - at; age > 0 {
			ev.Time = bt.now.Add(-time.Duration(min(age, int64(maxAge))))
		}
	}
	bt.b.Events = append(bt.b.Events, ev)
	if len(bt.b.Events) == cap(bt.b.Events) {
		return bt.flush()
	}
	return true
}

// flush sends the events gathered so far and publishes the counts. It
// returns false when the run has ended.
func (bt *batcher) flush() bool {
	bt.seen = 0
	bt.publish()
	if bt.r.ctx.Err() != nil {
		return false
	}
	if bt.b == nil || len(bt.b.Events) == 0 {
		return true
	}
	select {
	case bt.r.out <- bt.b:
		bt.b = nil
		return true
	case <-bt.r.ctx.Done():
		return false
	}
}

func (bt *batcher) publish() {
	c := &bt.counts
	if n := c[verdictEvent] + c[verdictMalformed] + c[verdictIgnored]; n > 0 {
		bt.s.received.Add(n)
		bt.s.events.Add(c[verdictEvent])
		bt.s.malformed.Add(c[verdictMalformed])
		bt.s.ignored.Add(c[verdictIgnored])
		*c = [3]uint64{}
	}
}

// close gives back the batch the reader still holds.
func (bt *batcher) close() {
	bt.publish()
	if bt.b != nil {
		bt.b.Release()
		bt.b = nil
	}
}

// batchesPerRun is the number of batches the readers of a run share: up
// to 4,096 events on their way to the matcher.
const batchesPerRun = 16

// watch follows rtnetlink: the local addresses, and the named interfaces
// as they come and go.
func (s *Source) watch(r *runState) error {
	sys := &s.sys
	for {
		msgs, err := sys.nl.recv(r.ctx)
		if err == nil {
			sys.mu.Lock()
			var links, addrs bool
			for i := range msgs {
				l, a := sys.net.apply(&msgs[i])
				links, addrs = links || l, addrs || a
			}
			if addrs {
				s.view.Store(sys.net.view())
			}
			if links {
				s.reconcileLocked(false)
			}
			sys.mu.Unlock()
			continue
		}
		if r.ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errOverrun) {
			return fmt.Errorf("rawsock: reading rtnetlink: %w", err)
		}
		st, err := sys.nl.sync(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rawsock: reading interfaces and addresses: %w", err)
		}
		sys.mu.Lock()
		sys.net = st
		s.view.Store(st.view())
		s.reconcileLocked(false)
		sys.mu.Unlock()
	}
}

func (s *Source) run(ctx context.Context, out chan<- *capture.Batch) error {
	sys := &s.sys
	sys.mu.Lock()
	if sys.closed {
		sys.mu.Unlock()
		return errClosed
	}
	if sys.run != nil {
		sys.mu.Unlock()
		return errors.New("rawsock: Run is already running")
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &runState{
		ctx:     rctx,
		cancel:  cancel,
		out:     out,
		pool:    capture.NewPool(batchesPerRun, batchSize),
		errc:    make(chan error, 1),
		readers: map[*sock]struct{}{},
	}
	sys.run = r
	s.startReadersLocked()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := s.watch(r); err != nil {
			r.fail(err)
		}
	}()
	sys.mu.Unlock()

	var err error
	select {
	case <-rctx.Done():
	case err = <-r.errc:
	}
	cancel()
	sys.mu.Lock()
	r.stopping = true
	for _, k := range sys.socks {
		k.wake()
	}
	sys.mu.Unlock()
	r.wg.Wait()

	sys.mu.Lock()
	sys.run = nil
	sys.mu.Unlock()
	return err
}

func (s *Source) update(spec capture.Spec) error {
	c, err := compile(spec)
	if err != nil {
		return err
	}
	sys := &s.sys
	sys.mu.Lock()
	defer sys.mu.Unlock()
	if sys.closed {
		return errClosed
	}
	old := compiled{spec: sys.spec, prog: sys.prog, tables: s.tables.Load(), names: sys.names}

	// SO_ATTACH_FILTER swaps the program of a live socket in one step.
	var done []*sock
	restore := func() {
		for _, k := range done {
			_ = k.setBPF(old.prog)
		}
	}
	for _, k := range sys.socks {
		if err := k.setBPF(c.prog); err != nil {
			restore()
			return fmt.Errorf("rawsock: replacing the filter on the %s: %w", k.key, err)
		}
		done = append(done, k)
	}
	sys.spec, sys.prog, sys.names = c.spec, c.prog, c.names
	s.tables.Store(c.tables)
	if err := s.reconcileLocked(true); err != nil {
		restore()
		sys.spec, sys.prog, sys.names = old.spec, old.prog, old.names
		s.tables.Store(old.tables)
		return err
	}
	return nil
}

func (s *Source) close() error {
	sys := &s.sys
	sys.mu.Lock()
	defer sys.mu.Unlock()
	s.closeLocked()
	return nil
}

func (s *Source) closeLocked() {
	sys := &s.sys
	if sys.closed {
		return
	}
	sys.closed = true
	if sys.run != nil {
		sys.run.cancel()
	}
	for _, k := range sys.socks {
		s.dropped.Add(k.close())
	}
	sys.socks = nil
	if sys.nl != nil {
		sys.nl.Close()
	}
}

func (s *Source) pollKernelStats() {
	sys := &s.sys
	sys.mu.Lock()
	defer sys.mu.Unlock()
	for _, k := range sys.socks {
		s.dropped.Add(k.drops())
	}
}

func available() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return openError("opening an AF_PACKET socket", os.NewSyscallError("socket", err))
	}
	unix.Close(fd)
	return nil
}

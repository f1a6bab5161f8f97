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
	out      chan<- capture.Event
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
		}()
	}
}

// read is a socket's reader: it delivers the knocks it reads to r.out
// until the run ends or the socket is closed.
func (s *Source) read(r *runState, k *sock) error {
	for {
		if err := k.rc.Read(k.readFn); err != nil {
			if r.ctx.Err() != nil || k.gone.Load() {
				return nil
			}
			return fmt.Errorf("rawsock: reading %s: %w", k.key, err)
		}
		if err := k.readErr(); err != nil {
			switch {
			case r.ctx.Err() != nil || k.gone.Load():
				return nil
			case k.errno == unix.ENETDOWN:
				// The interface went down; the socket carries
				// on when it comes back up.
				continue
			case k.key.name != "" && (k.errno == unix.ENODEV || k.errno == unix.ENXIO):
				// The interface is gone; rtnetlink tells the
				// watcher, which opens a new socket if it returns.
				return nil
			}
			return fmt.Errorf("rawsock: reading %s: %w", k.key, err)
		}
		b, pkttype, proto := k.packet()
		ev, v := judge(b, pkttype, proto, s.tables.Load(), s.view.Load())
		s.count(v)
		if v != verdictEvent {
			continue
		}
		ev.Time = time.Now()
		select {
		case r.out <- ev:
		case <-r.ctx.Done():
			return nil
		}
	}
}

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

func (s *Source) run(ctx context.Context, out chan<- capture.Event) error {
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
		errc:    make(chan error, 1),
		readers: map[*sock]struct{}{},
	}
	sys.run = r
	for _, k := range sys.socks {
		// A previous Run stopped its readers with a deadline.
		_ = k.conn.SetReadDeadline(time.Time{})
	}
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
		_ = k.conn.SetReadDeadline(time.Unix(1, 0))
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
			_ = k.conn.SetBPF(old.prog)
		}
	}
	for _, k := range sys.socks {
		if err := k.conn.SetBPF(c.prog); err != nil {
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

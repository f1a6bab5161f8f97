//go:build linux

package rawsock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

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
	s.closeLocked() // Run serves once
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

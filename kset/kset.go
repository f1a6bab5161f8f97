package kset

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knock-go/knock/config"
)

// queueLen bounds the additions waiting for one set's worker. A flash
// crowd is added in transactions of up to batchLen elements, so the queue
// empties far faster than any capture can fill it.
const (
	queueLen = 1 << 16
	batchLen = 1024
)

// Options configure Sets.
type Options struct {
	// Logf receives knockd's log lines ("door: adding ..."). Nil
	// discards them.
	Logf func(format string, args ...any)
	// NetNSFd, when not 0, is a network namespace to work in instead of
	// this process's own (for tests).
	NetNSFd int
}

// Sets adds knockers to the doors' kernel sets. It is an exec.Opener:
// Open never blocks, and each set has a worker that adds everything
// waiting for it in one netlink transaction. Its methods are safe for
// concurrent use.
type Sets struct {
	opts    Options
	mu      sync.Mutex
	workers map[string]*worker // by use.what
	live    map[liveKey]Element
	closed  bool
	wg      sync.WaitGroup
	dropped atomic.Uint64
}

// addition is one knocker to add to a set, or to remove from it.
type addition struct {
	door, label string
	addr        netip.Addr
	timeout     time.Duration
	remove      bool
}

// An Element is a knocker the daemon added to a door's set, as far as it
// knows: the kernel removes it at Until by itself.
type Element struct {
	Door  string     // the door's section
	Set   string     // how log lines name the set: "nft set inet filter knock" or "ipset knock"
	Src   netip.Addr // the knocker
	Label string     // the knocker as log lines name it
	Since time.Time  // the OPEN SESAME
	Until time.Time  // when the kernel removes it
}

type liveKey struct {
	set, door string
	addr      netip.Addr
}

// worker adds to one set.
type worker struct {
	what string // how log lines name the set
	q    chan addition
	a    adder
}

// adder adds a batch of knockers to one set, or removes one.
type adder interface {
	add([]addition) error
	del(netip.Addr) error
}

// SetError is a set that a door names and that cannot be used as it is.
type SetError struct {
	Door  string // the door's section
	Key   string // NFT_Set, NFT_Set_6, IPSet or IPSet_6
	Value string // the key's value, naming the set
	Err   error  // what is wrong
	Fix   string // the nft or ipset command that would make it right, if any
}

func (e *SetError) Error() string {
	s := fmt.Sprintf("[%s] %s = %s: %v", e.Door, e.Key, e.Value, e.Err)
	if e.Fix != "" {
		s += ": create it with: " + e.Fix
	}
	return s
}

func (e *SetError) Unwrap() error { return e.Err }

// ErrNoNetAdmin is wrapped by the errors of a process that may not change
// nftables sets.
var ErrNoNetAdmin = errors.New("this process lacks CAP_NET_ADMIN, which adding to nftables sets and ipsets needs: " +
	"run as root, or give the binary the capability (setcap cap_net_raw,cap_net_admin+ep /usr/sbin/knockd), " +
	"or AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the systemd unit")

// use is one set a door names: an nftables set or an ipset.
type use struct {
	door, key string
	set       config.NFTSet // valid iff ipset == ""
	ipset     string
	v6        bool
}

// what is how log lines name the set.
func (u use) what() string {
	if u.ipset != "" {
		return "ipset " + u.ipset
	}
	return "nft set " + u.set.String()
}

func (u use) value() string {
	if u.ipset != "" {
		return u.ipset
	}
	return u.set.String()
}

// uses lists the sets the doors name.
func uses(doors []*config.Door) []use {
	var us []use
	for _, d := range doors {
		if d.NFTSet != (config.NFTSet{}) {
			us = append(us, use{door: d.Name, key: "NFT_Set", set: d.NFTSet})
		}
		if d.NFTSet6 != (config.NFTSet{}) {
			us = append(us, use{door: d.Name, key: "NFT_Set_6", set: d.NFTSet6, v6: true})
		}
		if d.IPSet != "" {
			us = append(us, use{door: d.Name, key: "IPSet", ipset: d.IPSet})
		}
		if d.IPSet6 != "" {
			us = append(us, use{door: d.Name, key: "IPSet_6", ipset: d.IPSet6, v6: true})
		}
	}
	return us
}

// doorUses lists the sets d adds src to.
func doorUses(d *config.Door, src netip.Addr) []use {
	var us []use
	for _, u := range uses([]*config.Door{d}) {
		if u.v6 == src.Is6() {
			us = append(us, u)
		}
	}
	return us
}

// Any reports whether a door names a set.
func Any(doors []*config.Door) bool { return len(uses(doors)) > 0 }

// New checks every set the doors name and returns Sets ready to add to
// them. The error is a *SetError for the first set that is missing or
// unfit, or wraps ErrNoNetAdmin.
func New(doors []*config.Door, opts Options) (*Sets, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	s := &Sets{opts: opts, workers: map[string]*worker{}, live: map[liveKey]Element{}}
	if err := s.Update(doors); err != nil {
		return nil, err
	}
	return s, nil
}

// Update checks the sets of a new configuration's doors, and starts the
// workers of those it did not use yet. On error nothing changes, so that a
// reload can keep the running configuration.
func (s *Sets) Update(doors []*config.Door) error {
	us := uses(doors)
	if len(us) == 0 {
		return nil
	}
	for _, u := range us {
		if err := check(u, s.opts.NetNSFd); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kset: closed")
	}
	for _, u := range us {
		if s.workers[u.what()] != nil {
			continue
		}
		w := &worker{what: u.what(), q: make(chan addition, queueLen), a: newAdder(u, s.opts.NetNSFd)}
		s.workers[w.what] = w
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(w)
		}()
	}
	return nil
}

// Open adds src to the door's set for its family, for Cmd_Timeout. It
// returns at once: the worker adds it.
func (s *Sets) Open(d *config.Door, src netip.Addr, label string, now time.Time) {
	src = src.Unmap()
	for _, u := range doorUses(d, src) {
		s.mu.Lock()
		w := s.workers[u.what()]
		closed := s.closed
		s.mu.Unlock()
		if w == nil || closed {
			s.dropped.Add(1)
			continue
		}
		select {
		case w.q <- addition{door: d.Name, label: label, addr: src, timeout: d.CmdTimeout}:
			s.mu.Lock()
			s.live[liveKey{w.what, d.Name, src}] = Element{Door: d.Name, Set: w.what, Src: src, Label: label,
				Since: now, Until: now.Add(max(d.CmdTimeout, time.Second))}
			s.mu.Unlock()
		default:
			s.dropped.Add(1)
			s.opts.Logf("%s: error: too many additions waiting for %s: %s not added", d.Name, w.what, src)
		}
	}
}

// Dropped counts the additions not made because a queue was full or the
// Sets closed.
func (s *Sets) Dropped() uint64 { return s.dropped.Load() }

// Close adds what is waiting and stops the workers, waiting at most until
// ctx is done. Elements already added stay, and expire by themselves.
func (s *Sets) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for _, w := range s.workers {
			close(w.q)
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kset: additions still waiting at shutdown: %w", ctx.Err())
	}
}

// Pending lists the elements added and not yet expired, soonest to
// expire first.
func (s *Sets) Pending() []Element {
	now := time.Now()
	s.mu.Lock()
	out := make([]Element, 0, len(s.live))
	for k, e := range s.live {
		if !e.Until.After(now) {
			delete(s.live, k)
			continue
		}
		out = append(out, e)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Element) int {
		if c := a.Until.Compare(b.Until); c != 0 {
			return c
		}
		return strings.Compare(a.Door+a.Set, b.Door+b.Set)
	})
	return out
}

// Revoke removes src from the sets it was added to (by door only, unless
// door is empty) and returns those elements. The worker of each set
// removes it after what it is adding; a removal that fails is logged.
func (s *Sets) Revoke(src netip.Addr, door string) []Element {
	src = src.Unmap()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Element
	for k, e := range s.live {
		if k.addr != src || (door != "" && k.door != door) {
			continue
		}
		delete(s.live, k)
		if !e.Until.After(now) {
			continue
		}
		w := s.workers[k.set]
		if w == nil || s.closed {
			continue
		}
		select {
		case w.q <- addition{door: k.door, label: e.Label, addr: src, remove: true}:
			out = append(out, e)
		default:
			s.opts.Logf("%s: error: too many changes waiting for %s: %s not removed", k.door, w.what, src)
		}
	}
	slices.SortFunc(out, func(a, b Element) int { return strings.Compare(a.Door+a.Set, b.Door+b.Set) })
	return out
}

// run adds what arrives on w.q, everything waiting at once, and makes
// the removals in their turn.
func (s *Sets) run(w *worker) {
	batch := make([]addition, 0, batchLen)
	for first := range w.q {
		batch = append(batch[:0], first)
	more:
		for len(batch) < batchLen && !batch[len(batch)-1].remove {
			select {
			case x, ok := <-w.q:
				if !ok {
					break more
				}
				batch = append(batch, x)
			default:
				break more
			}
		}
		var rm *addition
		if x := batch[len(batch)-1]; x.remove {
			rm = &x
			batch = batch[:len(batch)-1]
		}
		s.addBatch(w, batch)
		if rm != nil {
			s.opts.Logf("%s: removing %s from %s", rm.door, rm.addr, w.what)
			if err := w.a.del(rm.addr); err != nil {
				s.opts.Logf("%s: error: could not remove %s from %s: %v", rm.door, rm.addr, w.what, err)
			}
		}
	}
}

func (s *Sets) addBatch(w *worker, batch []addition) {
	if len(batch) == 0 {
		return
	}
	for _, x := range batch {
		s.opts.Logf("%s: adding %s to %s for %d s", x.door, x.addr, w.what, int64(x.timeout/time.Second))
	}
	if err := w.a.add(batch); err != nil {
		for _, x := range batch {
			s.opts.Logf("%s: error: could not add %s to %s: %v", x.door, x.addr, w.what, err)
		}
	}
}

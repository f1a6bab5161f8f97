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
	// Kernel, when not nil, answers the checks of New and Update instead
	// of the kernel (for tests).
	Kernel Kernel
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

	// The additions not made for a full queue since the last line that
	// said so, and that line's time: one line a second at most.
	overMu   sync.Mutex
	overN    uint64
	overLast time.Time
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

	// known is when each element the worker has read or put expires
	// (farFuture: never), so that a batch costs no read of the set: a
	// read costs a few microseconds per element in the set, which a set
	// of thousands would add to every knock. It is read from the kernel
	// (seeded) at the worker's first batch, after a failed put, and
	// after a reload (reseed), which picks up elements that another
	// program changed meanwhile. Only the worker's goroutine uses it.
	known   map[netip.Addr]time.Time
	seeded  bool
	reseed  atomic.Bool
	pruneAt int
}

// farFuture is the expiry of an element without a timeout.
var farFuture = time.Unix(1<<62, 0)

// adder reads and writes one set.
type adder interface {
	// left returns how long each element of the set has left.
	left() (map[netip.Addr]time.Duration, error)
	// put puts each element in the set with its timeout, never twice:
	// one marked present gets its timeout replaced; another is added,
	// or, if the set holds it already, left as it is (nftables) or
	// refused with errPresent (ipset). Per-element failures come as
	// elemErrors.
	put([]element) error
	// del removes an element; one already gone is no error.
	del(netip.Addr) error
}

// errPresent is put's error for an element it was told is new and that
// the set holds already (an ipset says so; an nftables add leaves such an
// element as it is).
var errPresent = errors.New("already in the set")

// elemErrors is put's error when some elements could not be put and the
// others were.
type elemErrors map[netip.Addr]error

func (e elemErrors) Error() string {
	for a, err := range e {
		return fmt.Sprintf("%s and %d more: %v", a, len(e)-1, err)
	}
	return "no error"
}

// forever is the time left of an element that never expires.
const forever = time.Duration(1<<63 - 1)

// element is an address to put in a set, with its timeout.
type element struct {
	addr    netip.Addr
	timeout time.Duration
	// present is whether the element is known to be in the set, whose
	// timeout must then be replaced, where a new one is only added.
	present bool
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

// addingLine is the line for an addition: "door: adding IP to SET for N s".
func addingLine(door string, addr netip.Addr, what string, timeout time.Duration) string {
	return fmt.Sprintf("%s: adding %s to %s for %d s", door, addr, what, int64(timeout/time.Second))
}

// AddingLines returns the lines an opening of d for src logs as its
// additions to the door's sets are made, one per set, for knockd
// --replay, which makes none.
func AddingLines(d *config.Door, src netip.Addr) []string {
	src = src.Unmap()
	var out []string
	for _, u := range doorUses(d, src) {
		out = append(out, addingLine(d.Name, src, u.what(), d.CmdTimeout))
	}
	return out
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
	if opts.Kernel == nil {
		opts.Kernel = netKernel{opts.NetNSFd}
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
		if err := check(u, s.opts.Kernel); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("kset: closed")
	}
	for _, w := range s.workers {
		// Another program may have changed the sets since they were
		// read.
		w.reseed.Store(true)
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
			if s.live == nil {
				s.live = map[liveKey]Element{}
			}
			k := liveKey{w.what, d.Name, src}
			until := now.Add(max(d.CmdTimeout, time.Second))
			if e, ok := s.live[k]; ok && e.Until.After(until) {
				until = e.Until // an opening never gets shorter
			}
			s.live[k] = Element{Door: d.Name, Set: w.what, Src: src, Label: label, Since: now, Until: until}
			s.mu.Unlock()
		default:
			s.dropped.Add(1)
			s.overflow(d.Name, w, src, now)
		}
	}
}

// overflow logs that src was not added for a full queue, at most once a
// second, counting what it did not log.
func (s *Sets) overflow(door string, w *worker, src netip.Addr, now time.Time) {
	s.overMu.Lock()
	defer s.overMu.Unlock()
	s.overN++
	if !s.overLast.IsZero() && now.Sub(s.overLast) < time.Second && now.After(s.overLast) {
		return
	}
	s.opts.Logf("%s: error: %d additions already waiting for %s, which is not keeping up: %s not added (%d not added since the last such line)",
		door, cap(w.q), w.what, src, s.overN)
	s.overN = 0
	s.overLast = now
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
	s.overMu.Lock()
	if s.overN > 0 {
		s.opts.Logf("kset: %d more additions not added for full queues since the last line that said so", s.overN)
		s.overN = 0
	}
	s.overMu.Unlock()
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
		if len(batch) > 0 {
			s.add(w, batch)
		}
		if rm != nil {
			// Forgotten first, so that a knock after the revoke adds it
			// anew; a removal that fails has the set read again.
			delete(w.known, rm.addr)
			s.opts.Logf("%s: removing %s from %s", rm.door, rm.addr, w.what)
			if err := w.a.del(rm.addr); err != nil {
				w.seeded = false
				s.opts.Logf("%s: error: could not remove %s from %s: %v", rm.door, rm.addr, w.what, err)
			}
		}
	}
}

// add adds a batch to w's set. A knocker already in the set with more
// time left than asked for keeps it: an opening never gets shorter, even
// when doors that share the set have different Cmd_Timeouts, or an
// earlier run or a hand gave a longer one.
func (s *Sets) add(w *worker, batch []addition) {
	if w.reseed.Swap(false) {
		w.seeded = false
	}
	if !s.seed(w, batch) {
		return
	}
	kept, results := s.try(w, batch)
	// Elements another program put in an ipset since it was read (the
	// kernel says so): read it again, and try those once more.
	var again []addition
	for _, x := range batch {
		if errors.Is(results[x.addr], errPresent) {
			again = append(again, x)
		}
	}
	if len(again) > 0 {
		w.seeded = false
		if !s.seed(w, again) {
			return
		}
		k, r := s.try(w, again)
		for _, x := range again {
			delete(results, x.addr)
			if l, ok := k[x.addr]; ok {
				kept[x.addr] = l
			} else {
				results[x.addr] = r[x.addr]
			}
		}
	}
	for _, x := range batch {
		if l, ok := kept[x.addr]; ok {
			if l == forever {
				s.opts.Logf("%s: %s stays in %s without a timeout, as it was", x.door, x.addr, w.what)
			} else {
				s.opts.Logf("%s: %s stays in %s for the %d s it has left, longer than %d s", x.door, x.addr, w.what, int64(l.Round(time.Second)/time.Second), int64(x.timeout/time.Second))
			}
			continue
		}
		s.opts.Logf("%s", addingLine(x.door, x.addr, w.what, x.timeout))
		if err := results[x.addr]; err != nil {
			s.opts.Logf("%s: error: could not add %s to %s: %v", x.door, x.addr, w.what, err)
		}
	}
}

// seed reads the set's expiries into w.known unless w has them. It
// reports whether w has them; if not, it has logged why batch is not
// added.
func (s *Sets) seed(w *worker, batch []addition) bool {
	if w.seeded {
		return true
	}
	now := time.Now()
	left, err := w.a.left()
	if err != nil {
		// Adding blind could shorten an opening: fail closed.
		for _, x := range batch {
			s.opts.Logf("%s: error: could not read %s, so %s is not added: %v", x.door, w.what, x.addr, err)
		}
		return false
	}
	w.known = make(map[netip.Addr]time.Time, len(left))
	for a, l := range left {
		w.known[a] = expiry(now, l)
	}
	w.seeded, w.pruneAt = true, 2*len(w.known)+1024
	return true
}

// try puts batch's elements as w.known says they need, and remembers
// what it put. It returns the addresses kept as they were, with their
// time left, and the error of each address put that failed.
func (s *Sets) try(w *worker, batch []addition) (kept map[netip.Addr]time.Duration, failed map[netip.Addr]error) {
	now := time.Now()
	left := make(map[netip.Addr]time.Duration, len(batch))
	for _, x := range batch {
		if t, ok := w.known[x.addr]; ok && t.After(now) {
			left[x.addr] = forever
			if t != farFuture {
				left[x.addr] = t.Sub(now)
			}
		}
	}
	elems, kept := plan(batch, left)
	for i, e := range elems {
		_, elems[i].present = left[e.addr]
	}
	var err error
	if len(elems) > 0 {
		err = w.a.put(elems)
	}
	var some elemErrors
	if err != nil && !errors.As(err, &some) {
		// What the kernel holds now is not known.
		w.seeded = false
	}
	failed = map[netip.Addr]error{}
	for _, e := range elems {
		switch {
		case err == nil:
		case some == nil:
			failed[e.addr] = err
		case some[e.addr] != nil:
			failed[e.addr] = some[e.addr]
		}
		if failed[e.addr] == nil {
			w.known[e.addr] = now.Add(e.timeout)
		}
	}
	if len(w.known) > w.pruneAt {
		for a, t := range w.known {
			if !t.After(now) {
				delete(w.known, a)
			}
		}
		w.pruneAt = 2*len(w.known) + 1024
	}
	return kept, failed
}

// expiry is when an element with l left at now expires.
func expiry(now time.Time, l time.Duration) time.Time {
	if l == forever {
		return farFuture
	}
	return now.Add(l)
}

// plan returns the elements to put for batch: one per address, with the
// longest timeout asked for (at least a second, since 0 would mean the
// set's default or never), leaving out the addresses whose time left is
// at least that long, which kept returns.
func plan(batch []addition, left map[netip.Addr]time.Duration) (elems []element, kept map[netip.Addr]time.Duration) {
	longest := make(map[netip.Addr]time.Duration, len(batch))
	var order []netip.Addr
	for _, x := range batch {
		t, seen := longest[x.addr]
		if !seen {
			order = append(order, x.addr)
		}
		longest[x.addr] = max(t, x.timeout, time.Second)
	}
	kept = map[netip.Addr]time.Duration{}
	for _, a := range order {
		if l, ok := left[a]; ok && l >= longest[a] {
			kept[a] = l
			continue
		}
		elems = append(elems, element{addr: a, timeout: longest[a]})
	}
	return elems, kept
}

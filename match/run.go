package match

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
)

// Reload replaces the doors. Attempts in progress on a door that keeps
// its name, sequence, target, flags, sources and timeout go on; the others
// end without a log line, since their door no longer exists as they knew
// it.
func (m *Matcher) Reload(doors []*config.Door) {
	byName := make(map[string]int32, len(doors))
	for i, d := range doors {
		byName[d.Name] = int32(i)
	}
	keep := m.attempts(func(di int32) (int32, bool) {
		old := &m.doors[di]
		ni, ok := byName[old.cfg.Name]
		if !ok || old.disabled || !sameMatching(old.cfg, old.seq, doors[ni]) {
			return 0, false
		}
		return ni, true
	})
	m.setDoors(doors)
	m.restore(keep, false)
}

// SetMaxAttempts changes the cap on attempts in progress, as
// Options.MaxAttempts sets it (0 means DefaultMaxAttempts). The attempts
// in progress go on where they fit under the new cap; beyond it, those at
// stage 1 give way first, the oldest first, and each one that does is
// counted as evicted. The source table is sized anew for the cap.
func (m *Matcher) SetMaxAttempts(n int) {
	n = capFor(n)
	if n == m.max {
		return
	}
	keep := m.attempts(func(di int32) (int32, bool) { return di, true })
	if len(keep) > n {
		// The furthest along first, then the newest.
		slices.SortStableFunc(keep, func(a, b kept) int {
			if c := cmp.Compare(min(b.stage, 2), min(a.stage, 2)); c != 0 {
				return c
			}
			return cmp.Compare(b.start, a.start)
		})
		m.evicted += uint64(len(keep) - n)
		keep = keep[:n]
		slices.SortStableFunc(keep, func(a, b kept) int { return cmp.Compare(a.start, b.start) })
	}
	m.max = n
	m.tab = newTable(n)
	m.atts = newAttempts(n)
	m.restore(keep, true)
}

// kept is an attempt in progress while the state is rebuilt.
type kept struct {
	src   srcKey
	kind  addrKind
	hash  uint32
	start int64
	door  int32
	stage int32
}

// attempts returns the attempts in progress, oldest first, for which
// newDoor, given the index of an attempt's door, returns true, with the
// door index it returns.
func (m *Matcher) attempts(newDoor func(di int32) (int32, bool)) []kept {
	var keep []kept
	// Walk the sources' chains in the order of their heads in m.atts, not
	// in table order, which depends on the hash seed: the order in which
	// attempts that started together are restored is then reproducible.
	for h := range m.atts {
		a := &m.atts[h]
		if a.stage == 0 {
			continue
		}
		if pos, ok := m.tab.find(a.src, a.hash, m.atts); !ok || m.tab.head(pos) != int32(h) {
			continue
		}
		for i := int32(h); i != none; i = m.atts[i].srcNext {
			a := &m.atts[i]
			if ni, ok := newDoor(a.door); ok {
				keep = append(keep, kept{a.src, a.kind, a.hash, a.start, ni, a.stage})
			}
		}
	}
	slices.SortStableFunc(keep, func(a, b kept) int { return cmp.Compare(a.start, b.start) })
	return keep
}

// restore empties the state and starts the attempts in keep again, in
// order, at their stage. rehash says the table is new, so that the
// hashes in keep are stale.
func (m *Matcher) restore(keep []kept, rehash bool) {
	m.atts = m.atts[:0]
	m.free = none
	m.count = 0
	m.stage1 = [2]list{{none, none}, {none, none}}
	m.n1 = [2]int{}
	for g := range m.groups {
		m.groups[g].l = list{none, none}
	}
	m.tab.clear()
	for _, k := range keep {
		if rehash {
			k.hash = m.tab.hash(k.src)
		}
		i := m.add(k.door, k.src, k.kind, k.hash, k.start, true)
		if i == none || k.stage == 1 {
			continue
		}
		// add starts at stage 1: move the attempt to where it was.
		m.unlinkStage(i)
		m.atts[i].stage = k.stage
	}
}

func sameMatching(old *config.Door, oldSeq []config.Knock, nd *config.Door) bool {
	return slices.Equal(oldSeq, nd.Sequence) && old.Target == nd.Target &&
		old.Flags == nd.Flags && old.SeqTimeout == nd.SeqTimeout && slices.Equal(old.Sources, nd.Sources)
}

// Loop runs a Matcher on its own goroutine: see Run.
type Loop struct {
	m    *Matcher
	ctl  chan func(*Matcher)
	done chan struct{} // closed when Run returns
	now  func() time.Time
	acts []Action
}

// NewLoop returns a Loop around m. now is the clock used for timer
// driven expiry; nil means time.Now.
func NewLoop(m *Matcher, now func() time.Time) *Loop {
	if now == nil {
		now = time.Now
	}
	return &Loop{m: m, ctl: make(chan func(*Matcher)), done: make(chan struct{}), now: now}
}

// Do runs f on the loop's goroutine with the matcher, and waits for it.
// It returns false, without running f, when ctx ends or the loop has
// ended first.
func (l *Loop) Do(ctx context.Context, f func(*Matcher)) bool {
	ran := make(chan struct{})
	select {
	case l.ctl <- func(m *Matcher) { f(m); close(ran) }:
		<-ran
		return true
	case <-ctx.Done():
		return false
	case <-l.done:
		return false
	}
}

// Run matches batches of events from in until ctx ends or in is closed,
// expiring attempts when their time comes, and hands the actions of each
// batch, or of each expiry, to emit. It releases each batch once its
// events are matched, before emit runs. emit runs on the loop's goroutine
// and must not block for long; the slice is reused after it returns.
func (l *Loop) Run(ctx context.Context, in <-chan *capture.Batch, emit func([]Action)) {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var armed time.Time
	rearm := func() {
		next, ok := l.m.NextDeadline()
		if !ok {
			if !armed.IsZero() {
				timer.Stop()
				armed = time.Time{}
			}
			return
		}
		if next.Equal(armed) {
			return
		}
		armed = next
		timer.Reset(max(next.Sub(l.now()), 0))
	}
	for {
		l.acts = l.acts[:0]
		select {
		case <-ctx.Done():
			return
		case b, ok := <-in:
			if !ok {
				return
			}
			if b != nil {
				l.acts = l.m.HandleBatch(b.Events, l.acts)
				b.Release()
			}
		case <-timer.C:
			armed = time.Time{}
			l.acts = l.m.Expire(l.now(), l.acts)
		case f := <-l.ctl:
			f(l.m)
		}
		if len(l.acts) > 0 {
			emit(l.acts)
		}
		rearm()
	}
}

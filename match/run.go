package match

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
)

// Reload replaces the doors. Attempts in progress on a door that keeps
// its name, sequence, target, flags and timeout go on; the others end
// without a log line, since their door no longer exists as they knew it.
func (m *Matcher) Reload(doors []*config.Door) {
	type kept struct {
		src   netip.Addr
		start time.Time
		door  int32
		stage int32
	}
	byName := make(map[string]int32, len(doors))
	for i, d := range doors {
		byName[d.Name] = int32(i)
	}
	var keep []kept
	for _, head := range m.bySrc {
		for i := head; i != none; i = m.atts[i].srcNext {
			a := &m.atts[i]
			old := m.doors[a.door]
			ni, ok := byName[old.cfg.Name]
			if !ok || old.disabled || !sameMatching(old.cfg, old.seq, doors[ni]) {
				continue
			}
			keep = append(keep, kept{a.src, a.start, ni, a.stage})
		}
	}
	slices.SortStableFunc(keep, func(a, b kept) int { return a.start.Compare(b.start) })

	m.atts = m.atts[:0]
	m.free = none
	m.count = 0
	clear(m.bySrc)
	for i := range m.stages {
		m.stages[i] = list{none, none}
	}
	m.setDoors(doors)
	for _, k := range keep {
		m.add(k.door, k.src, k.start)
		// add starts at stage 1: move the attempt to where it was.
		i := m.bySrcTail(k.src)
		m.unlinkStage(i)
		m.atts[i].stage = k.stage
		m.linkStage(i)
	}
}

func (m *Matcher) bySrcTail(src netip.Addr) int32 {
	j := m.bySrc[keyOfSrc(src)]
	for m.atts[j].srcNext != none {
		j = m.atts[j].srcNext
	}
	return j
}

func sameMatching(old *config.Door, oldSeq []config.Knock, nd *config.Door) bool {
	return slices.Equal(oldSeq, nd.Sequence) && old.Target == nd.Target &&
		old.Flags == nd.Flags && old.SeqTimeout == nd.SeqTimeout
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

// Run matches events from in until ctx ends or in is closed, expiring
// attempts when their time comes, and hands each batch of actions to
// emit. emit runs on the loop's goroutine and must not block for long;
// the slice is reused after it returns.
func (l *Loop) Run(ctx context.Context, in <-chan capture.Event, emit func([]Action)) {
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
		case ev, ok := <-in:
			if !ok {
				return
			}
			l.acts = l.m.Handle(ev, l.acts)
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

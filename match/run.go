package match

import (
	"context"
	"time"

	"github.com/knock-go/knock/capture"
)

// Loop runs a Matcher on its own goroutine: see Run.
type Loop struct {
	m     *Matcher
	ctl   chan func(*Matcher)
	done  chan struct{} // closed when Run returns
	now   func() time.Time
	acts  []Action
	stats loopStats
}

// NewLoop returns a Loop around m. now is the clock used for timer
// driven expiry; nil means time.Now.
func NewLoop(m *Matcher, now func() time.Time) *Loop {
	if now == nil {
		now = time.Now
	}
	l := &Loop{m: m, ctl: make(chan func(*Matcher)), done: make(chan struct{}), now: now}
	l.stats.publish(m)
	return l
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
		l.stats.publish(l.m)
		if len(l.acts) > 0 {
			emit(l.acts)
		}
		rearm()
	}
}

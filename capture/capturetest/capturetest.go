// Package capturetest helps test capture sources.
package capturetest

import (
	"context"
	"errors"
	"sync"

	"github.com/knock-go/knock/capture"
)

// Flatten passes the events of the batches from in on to out one by one,
// releasing each batch, until in is closed.
func Flatten(in <-chan *capture.Batch, out chan<- capture.Event) {
	for b := range in {
		for _, ev := range b.Events {
			out <- ev
		}
		b.Release()
	}
}

// Source is a fake capture.Source that serves the events a test feeds
// it, and records what it is asked to watch. It follows the lifecycle of
// capture.Source: Run serves once, Close is idempotent.
type Source struct {
	feed      chan []capture.Event
	closed    chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	spec    capture.Spec
	updates int
	ran     bool
}

var _ capture.Source = (*Source)(nil)

// NewSource returns a fake source watching spec.
func NewSource(spec capture.Spec) *Source {
	return &Source{feed: make(chan []capture.Event), closed: make(chan struct{}), spec: spec}
}

// Feed hands events to Run, which sends them on in batches, in order. It
// returns once Run has taken them, or false when the source is closed.
func (s *Source) Feed(events ...capture.Event) bool {
	select {
	case s.feed <- events:
		return true
	case <-s.closed:
		return false
	}
}

// Run sends what Feed hands it to out until ctx ends or Close is called,
// then closes the source.
func (s *Source) Run(ctx context.Context, out chan<- *capture.Batch) error {
	s.mu.Lock()
	ran := s.ran
	s.ran = true
	s.mu.Unlock()
	if ran || s.Closed() {
		return errors.New("capturetest: Run called on a closed source")
	}
	defer s.Close()
	pool := capture.NewPool(4, 256)
	for {
		var events []capture.Event
		select {
		case events = <-s.feed:
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		}
		for len(events) > 0 {
			b := pool.Get(ctx)
			if b == nil {
				return nil
			}
			n := min(len(events), pool.Size())
			b.Events = append(b.Events, events[:n]...)
			events = events[n:]
			select {
			case out <- b:
			case <-ctx.Done():
				b.Release()
				return nil
			}
		}
	}
}

// Update records spec as what the source watches.
func (s *Source) Update(spec capture.Spec) error {
	if s.Closed() {
		return errors.New("capturetest: source is closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spec = spec
	s.updates++
	return nil
}

// Spec returns what the source watches now, and how many times Update
// changed it.
func (s *Source) Spec() (capture.Spec, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spec, s.updates
}

// Close closes the source; Run returns. It is idempotent.
func (s *Source) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// Closed reports whether Close was called (or Run returned).
func (s *Source) Closed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Name returns "fake".
func (s *Source) Name() string { return "fake" }

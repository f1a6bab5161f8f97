package match

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
)

func TestAttempts(t *testing.T) {
	m := New([]*config.Door{mkDoor("slow", "7000,8000,9000", 60), mkDoor("quick", "7100,8000", 5)}, Options{})
	var out []Action
	for _, s := range []step{{0, "198.51.100.7 7000", 0, ""}, {1, "198.51.100.8 7100", 0, ""}, {2, "198.51.100.7 8000", 0, ""}, {3, "198.51.100.9 7000", 0, ""}} {
		out = m.Handle(s.event(), out)
	}
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	want := []Attempt{
		{Door: "quick", Src: netip.MustParseAddr("198.51.100.8"), Stage: 1, Since: at(1), Until: at(6)},
		{Door: "slow", Src: netip.MustParseAddr("198.51.100.7"), Stage: 2, Since: at(0), Until: at(60)},
		{Door: "slow", Src: netip.MustParseAddr("198.51.100.9"), Stage: 1, Since: at(3), Until: at(63)},
	}
	opt := cmpopts.EquateComparable(netip.Addr{})
	if diff := cmp.Diff(want, m.Attempts(10), opt); diff != "" {
		t.Errorf("Attempts(10) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[:2], m.Attempts(2), opt); diff != "" {
		t.Errorf("Attempts(2) (-want +got):\n%s", diff)
	}
}

// TestLoopStats checks that the counters a reader sees follow a batch that
// changes them without any action: a wrong knock ends an attempt quietly.
func TestLoopStats(t *testing.T) {
	m := New([]*config.Door{mkDoor("d", "7000,8000", 60)}, Options{MaxAttempts: 100})
	l := NewLoop(m, func() time.Time { return t0 })
	if got := l.Stats(); got.InProgress != 0 || got.MaxAttempts != 100 {
		t.Errorf("Stats before Run = %+v", got)
	}
	in := make(chan *capture.Batch)
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { l.Run(ctx, in, func([]Action) {}); close(ended) }()
	defer func() { cancel(); <-ended }()
	in <- &capture.Batch{Events: []capture.Event{step{0, "198.51.100.7 7000", 0, ""}.event()}}
	l.Do(ctx, func(*Matcher) {}) // the batch has been matched
	if got := l.Stats().InProgress; got != 1 {
		t.Errorf("after a first knock InProgress = %d, want 1", got)
	}
	in <- &capture.Batch{Events: []capture.Event{step{1, "198.51.100.7 7000", 0, ""}.event(), step{2, "198.51.100.7 9999", 0, ""}.event()}}
	l.Do(ctx, func(*Matcher) {})
	if got := l.Stats().InProgress; got != 0 {
		t.Errorf("after a wrong knock InProgress = %d, want 0", got)
	}
}

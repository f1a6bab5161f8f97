package match

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// TestLoopExpiresOnTime runs the loop with real timers: a timeout is
// reported without any further event.
func TestLoopExpiresOnTime(t *testing.T) {
	m := New([]*config.Door{mkDoor("d", "7000,8000", 1)}, Options{})
	l := NewLoop(m, nil)
	in := make(chan *capture.Batch)
	got := make(chan Action, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx, in, func(acts []Action) {
		for _, a := range acts {
			got <- a
		}
	})
	start := time.Now()
	in <- &capture.Batch{Events: []capture.Event{{Time: start, Src: netip.MustParseAddr("198.51.100.7"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN}}}
	if a := <-got; a.Kind != Stage {
		t.Fatalf("first action %v, want Stage", a)
	}
	select {
	case a := <-got:
		if a.Kind != Timeout || time.Since(start) < time.Second {
			t.Errorf("%v after %v, want a Timeout after 1 s", a, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no timeout reported")
	}
}

// TestLoopDoAfterEnd checks that Do does not wait forever once the loop
// has ended (an action handler may still call it while draining).
func TestLoopDoAfterEnd(t *testing.T) {
	l := NewLoop(New(nil, Options{}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { l.Run(ctx, nil, func([]Action) {}); close(ended) }()
	if !l.Do(context.Background(), func(*Matcher) {}) {
		t.Error("Do on a running loop returned false")
	}
	cancel()
	<-ended
	done := make(chan bool)
	go func() { done <- l.Do(context.Background(), func(*Matcher) {}) }()
	select {
	case ok := <-done:
		if ok {
			t.Error("Do after the end ran its function")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do after the end of the loop blocked")
	}
}

// TestLoopTakesBatches checks that the loop matches a batch's events in
// order, emits their actions in one call, releases the batch to its pool,
// and survives a nil batch.
func TestLoopTakesBatches(t *testing.T) {
	m := New([]*config.Door{mkDoor("d", "7000,8000,9000", 5)}, Options{})
	l := NewLoop(m, func() time.Time { return t0 })
	in := make(chan *capture.Batch)
	emitted := make(chan []string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan struct{})
	go func() {
		l.Run(ctx, in, func(acts []Action) {
			var s []string
			for _, a := range acts {
				s = append(s, a.String())
			}
			emitted <- s
		})
		close(ended)
	}()
	pool := capture.NewPool(1, 8)
	b := pool.Get(ctx)
	for _, s := range []step{{0, "198.51.100.7 7000", 0, ""}, {0.1, "198.51.100.8 7000", 0, ""}, {0.2, "198.51.100.7 8000", 0, ""}, {0.3, "198.51.100.7 9000", 0, ""}} {
		b.Events = append(b.Events, s.event())
	}
	in <- b
	want := []string{"198.51.100.7: d: Stage 1", "198.51.100.8: d: Stage 1", "198.51.100.7: d: Stage 2",
		"198.51.100.7: d: Stage 3", "198.51.100.7: d: OPEN SESAME"}
	if diff := cmp.Diff(want, <-emitted); diff != "" {
		t.Errorf("first emit (-want +got):\n%s", diff)
	}
	// The pool's only batch must be back.
	getCtx, getCancel := context.WithTimeout(ctx, 5*time.Second)
	b = pool.Get(getCtx)
	getCancel()
	if b == nil {
		t.Fatal("batch not released")
	}
	if len(b.Events) != 0 {
		t.Errorf("released batch holds %d events", len(b.Events))
	}
	in <- nil
	b.Events = append(b.Events, step{0.4, "198.51.100.8 8000", 0, ""}.event())
	in <- b
	if diff := cmp.Diff([]string{"198.51.100.8: d: Stage 2"}, <-emitted); diff != "" {
		t.Errorf("second emit (-want +got):\n%s", diff)
	}
	close(in)
	<-ended
	select {
	case s := <-emitted:
		t.Errorf("unexpected emit %q", s)
	default:
	}
}

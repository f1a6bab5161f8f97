package match

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
)

// TestLoopExpiresOnTime runs the loop with real timers: a timeout is
// reported without any further event.
func TestLoopExpiresOnTime(t *testing.T) {
	m := New([]*config.Door{mkDoor("d", "7000,8000", 1)}, Options{})
	l := NewLoop(m, nil)
	in := make(chan capture.Event)
	got := make(chan Action, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx, in, func(acts []Action) {
		for _, a := range acts {
			got <- a
		}
	})
	start := time.Now()
	in <- capture.Event{Time: start, Src: netip.MustParseAddr("198.51.100.7"), Port: 7000, Proto: config.TCP, Flags: config.SYN}
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

package capture

import (
	"context"
	"testing"
	"time"
)

func TestPool(t *testing.T) {
	p := NewPool(2, 3)
	ctx := context.Background()
	a, b := p.Get(ctx), p.Get(ctx)
	if a == nil || b == nil || a == b {
		t.Fatalf("Get: %p, %p", a, b)
	}
	if cap(a.Events) != 3 || len(a.Events) != 0 || p.Size() != 3 {
		t.Fatalf("batch: len %d cap %d, Size %d", len(a.Events), cap(a.Events), p.Size())
	}
	a.Events = append(a.Events, Event{Port: 1})

	// All in use: Get waits until one is released.
	got := make(chan *Batch)
	go func() { got <- p.Get(ctx) }()
	select {
	case c := <-got:
		t.Fatalf("Get returned %p with every batch in use", c)
	case <-time.After(20 * time.Millisecond):
	}
	a.Release()
	select {
	case c := <-got:
		if c != a || len(c.Events) != 0 {
			t.Fatalf("Get after Release: %p with %d events, want %p empty", c, len(c.Events), a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get still waiting after Release")
	}

	// A cancelled context ends the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if c := p.Get(cctx); c != nil {
		t.Fatalf("Get with a cancelled context and none free = %p", c)
	}
	// A batch made by hand has no pool: Release does nothing.
	(&Batch{}).Release()
}

package capturetest

import (
	"context"
	"net/netip"
	"testing"

	"github.com/knock-go/knock/capture"
)

func TestSourceLifecycle(t *testing.T) {
	s := NewSource(capture.Spec{})
	out := make(chan *capture.Batch, 8)
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), out) }()

	// 300 events: more than a batch holds, so two batches, in order.
	evs := make([]capture.Event, 300)
	for i := range evs {
		evs[i] = capture.Event{Src: netip.MustParseAddr("198.18.0.1"), Port: uint16(i)}
	}
	if !s.Feed(evs...) {
		t.Fatal("Feed on a running source returned false")
	}
	got := 0
	for got < len(evs) {
		b := <-out
		for _, ev := range b.Events {
			if int(ev.Port) != got {
				t.Fatalf("event %d has port %d", got, ev.Port)
			}
			got++
		}
		b.Release()
	}

	if err := s.Update(capture.Spec{IPv4Only: true}); err != nil {
		t.Fatal(err)
	}
	if spec, n := s.Spec(); !spec.IPv4Only || n != 1 {
		t.Errorf("Spec() = %+v, %d updates", spec, n)
	}
	s.Close()
	s.Close()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if s.Feed(evs[0]) {
		t.Error("Feed on a closed source returned true")
	}
	if err := s.Run(context.Background(), out); err == nil {
		t.Error("a second Run returned nil")
	}
	if err := s.Update(capture.Spec{}); err == nil {
		t.Error("Update on a closed source returned nil")
	}
}

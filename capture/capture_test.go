package capture

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
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

// TestNewSpecSources: a port gets the union of its doors' Source lists,
// or nil as soon as one door on it takes any source.
func TestNewSpecSources(t *testing.T) {
	pfx := netip.MustParsePrefix
	lan := &config.Door{Name: "lan", Sequence: []wire.Knock{{Port: 7000, Proto: wire.TCP}, {Port: 8000, Proto: wire.UDP}},
		Sources: []netip.Prefix{pfx("198.51.100.0/24")}}
	v6 := &config.Door{Name: "v6", Sequence: []wire.Knock{{Port: 7000, Proto: wire.TCP}},
		Sources: []netip.Prefix{pfx("2001:db8::/32"), pfx("198.51.100.0/24")}}
	open := &config.Door{Name: "open", Sequence: []wire.Knock{{Port: 8000, Proto: wire.UDP}}}
	spec := NewSpec([]*config.Door{lan, v6, open}, nil, false)
	got := map[string][]netip.Prefix{}
	for _, p := range spec.Ports {
		got[wire.Knock{Port: p.Port, Proto: p.Proto}.String()] = p.Sources
	}
	want := map[string][]netip.Prefix{
		"7000:tcp": {pfx("198.51.100.0/24"), pfx("2001:db8::/32")},
		"8000:udp": nil,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("sources by port (-want +got):\n%s", diff)
	}
}

package match

import (
	"net/netip"
	"testing"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// allocCase is a matcher in a steady state and a way to make the events
// of one run of AllocsPerRun, which must then not allocate.
type allocCase struct {
	name   string
	doors  []*config.Door
	opts   Options
	warm   int                                                // runs before measuring, to reach the steady state
	events func(run int, evs []capture.Event) []capture.Event // the events of one run
	want   Kind                                               // an action the runs must produce, 0 for none
	evicts bool                                               // the runs must evict
}

func allocSrc(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
}

func allocEvent(src netip.Addr, port uint16, at time.Duration) capture.Event {
	return capture.Event{Time: t0.Add(at), Src: src, Dst: netip.MustParseAddr("203.0.113.1"), Port: port, Proto: wire.TCP, Flags: wire.SYN}
}

func allocCases() []allocCase {
	gated := mkDoor("gated", "7000,8000,9000", 3600)
	gated.Sources = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
	return []allocCase{{
		// A knock that keeps an attempt in progress, among many.
		name:  "repeat",
		doors: []*config.Door{mkDoor("d", "7000,8000,9000", 3600)},
		warm:  10_000,
		events: func(run int, evs []capture.Event) []capture.Event {
			return append(evs, allocEvent(allocSrc(run%10_000), 7000, time.Duration(run)))
		},
	}, {
		// A source starts, advances and opens: the attempt is made,
		// linked, unlinked and given back.
		name:  "sequence opens",
		doors: []*config.Door{mkDoor("d", "7000,8000,9000", 3600)},
		warm:  100,
		events: func(run int, evs []capture.Event) []capture.Event {
			src, at := allocSrc(run%1000), time.Duration(run)*time.Millisecond
			return append(evs, allocEvent(src, 7000, at), allocEvent(src, 8000, at), allocEvent(src, 9000, at))
		},
		want: Open,
	}, {
		// Each run's knock comes after the last one's attempt expired.
		name:  "timeout",
		doors: []*config.Door{mkDoor("d", "7000,8000,9000", 5)},
		warm:  100,
		events: func(run int, evs []capture.Event) []capture.Event {
			return append(evs, allocEvent(allocSrc(run%1000), 7000, time.Duration(run)*10*time.Second))
		},
		want: Timeout,
	}, {
		// A flood of new sources at the cap: each one evicts.
		name:  "evict at the cap",
		doors: []*config.Door{mkDoor("d", "7000,8000,9000", 3600)},
		opts:  Options{MaxAttempts: 1000},
		warm:  2000,
		events: func(run int, evs []capture.Event) []capture.Event {
			return append(evs, allocEvent(allocSrc(run), 7000, 0))
		},
		evicts: true,
	}, {
		// A door with a Source list, through the gate.
		name:  "sources gate",
		doors: []*config.Door{gated, mkDoor("other", "7001,8001", 3600)},
		warm:  100,
		events: func(run int, evs []capture.Event) []capture.Event {
			src, at := allocSrc(run%1000), time.Duration(run)*time.Millisecond
			out := allocEvent(netip.MustParseAddr("203.0.113.9"), 8000, at)
			return append(evs, allocEvent(src, 7000, at), out, allocEvent(src, 8000, at), allocEvent(src, 9000, at))
		},
		want: Open,
	}}
}

// TestHandleAllocs holds Handle and HandleBatch to the matcher's promise:
// once the state is set up, matching allocates nothing.
func TestHandleAllocs(t *testing.T) {
	for _, tc := range allocCases() {
		for _, batched := range []bool{false, true} {
			name := tc.name + "/Handle"
			if batched {
				name = tc.name + "/HandleBatch"
			}
			t.Run(name, func(t *testing.T) {
				m := New(tc.doors, tc.opts)
				evs := make([]capture.Event, 0, 8)
				out := make([]Action, 0, 16)
				run := 0
				saw := false
				one := func() {
					evs = tc.events(run, evs[:0])
					run++
					out = out[:0]
					if batched {
						out = m.HandleBatch(evs, out)
					} else {
						for _, ev := range evs {
							out = m.Handle(ev, out)
						}
					}
					for _, a := range out {
						saw = saw || a.Kind == tc.want
					}
				}
				for range tc.warm {
					one()
				}
				if n := testing.AllocsPerRun(1000, one); n != 0 {
					t.Errorf("%v allocations per run, want 0", n)
				}
				if st := m.Stats(); tc.evicts != (st.Evicted > 0) {
					t.Errorf("%d evicted; want evictions: %v", st.Evicted, tc.evicts)
				}
				if tc.want != 0 && !saw {
					t.Errorf("no %v among the actions: the runs did not take the path they test", tc.want)
				}
			})
		}
	}
}

package match

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// inProgress returns a matcher with n sources each at stage 1 of one
// door, the sources, and an event that repeats their knock.
func inProgress(b *testing.B, n int) (*Matcher, []netip.Addr, capture.Event) {
	d := mkDoor("d", "7000,8000,9000", 3600)
	m := New([]*config.Door{d}, Options{MaxAttempts: n})
	srcs := make([]netip.Addr, n)
	for i := range srcs {
		srcs[i] = netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
	}
	ev := capture.Event{Time: t0, Dst: netip.MustParseAddr("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN}
	var out []Action
	for _, s := range srcs {
		ev.Src = s
		out = m.Handle(ev, out[:0])
	}
	if m.Stats().InProgress != n {
		b.Fatalf("%d in progress, want %d", m.Stats().InProgress, n)
	}
	return m, srcs, ev
}

// BenchmarkHandle measures events per second with n sources holding an
// attempt in progress. Each event is a knock from one of them that keeps
// its attempt going (a repeat of its last knock), so the state stays at
// n sources and every event does a full lookup.
func BenchmarkHandle(b *testing.B) {
	for _, n := range []int{1, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("sources=%d", n), func(b *testing.B) {
			m, srcs, ev := inProgress(b, n)
			var out []Action
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev.Src = srcs[i%n]
				ev.Time = t0.Add(time.Duration(i))
				out = m.Handle(ev, out[:0])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchBatch is the number of events per batch in the batch benchmarks.
const benchBatch = 256

// BenchmarkHandleBatch is BenchmarkHandle with the events handed over in
// batches of benchBatch, as the loop gets them from a capture source. One
// op is one event.
func BenchmarkHandleBatch(b *testing.B) {
	for _, n := range []int{1, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("sources=%d", n), func(b *testing.B) {
			m, srcs, ev := inProgress(b, n)
			handleInBatches(b, m, ev, func(batch []capture.Event, first int) {
				for j := range batch {
					batch[j].Src = srcs[(first+j)%n]
					batch[j].Time = t0.Add(time.Duration(first + j))
				}
			})
		})
	}
}

// handleInBatches times b.N events handed to m in batches of benchBatch,
// as the loop gets them from a capture source: copies of ev, which fill
// sets in place for the events numbered from first on. One op is one
// event.
func handleInBatches(b *testing.B, m *Matcher, ev capture.Event, fill func(batch []capture.Event, first int)) {
	batch := make([]capture.Event, benchBatch)
	for j := range batch {
		batch[j] = ev
	}
	var out []Action
	// Let the garbage of the set-up go before timing.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		k := min(benchBatch, b.N-i)
		fill(batch[:k], i)
		out = m.HandleBatch(batch[:k], out[:0])
		i += k
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFloodBatch is BenchmarkFlood with the events handed over in
// batches of benchBatch, and the state filled to the cap before timing,
// so that every timed event evicts. One op is one event.
func BenchmarkFloodBatch(b *testing.B) {
	const max = 100_000
	d := mkDoor("d", "7000,8000,9000", 3600)
	m := New([]*config.Door{d}, Options{MaxAttempts: max})
	ev := capture.Event{Time: t0, Dst: netip.MustParseAddr("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN}
	src := func(s int) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)})
	}
	var out []Action
	for i := range max {
		ev.Src = src(i)
		out = m.Handle(ev, out[:0])
	}
	handleInBatches(b, m, ev, func(batch []capture.Event, first int) {
		for j := range batch {
			batch[j].Src = src(max + first + j)
		}
	})
	if st := m.Stats(); st.Evicted != uint64(b.N) {
		b.Fatalf("%d evicted, want %d", st.Evicted, b.N)
	}
}

// BenchmarkFlood measures a spoofed flood on the first port at the
// attempt cap: every event starts an attempt and evicts the oldest.
func BenchmarkFlood(b *testing.B) {
	d := mkDoor("d", "7000,8000,9000", 3600)
	m := New([]*config.Door{d}, Options{MaxAttempts: 100_000})
	ev := capture.Event{Time: t0, Dst: netip.MustParseAddr("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN}
	var out []Action
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ev.Src = netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		out = m.Handle(ev, out[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryAtCap fills the matcher to DefaultMaxAttempts attempts
// from distinct sources and reports the heap it holds.
func BenchmarkMemoryAtCap(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := New([]*config.Door{mkDoor("d", "7000,8000,9000", 3600)}, Options{})
		ev := capture.Event{Time: t0, Dst: netip.MustParseAddr("203.0.113.1"), Port: 7000, Proto: wire.TCP, Flags: wire.SYN}
		var out []Action
		for j := 0; j < DefaultMaxAttempts; j++ {
			ev.Src = netip.AddrFrom4([4]byte{198, 18 + byte(j>>16), byte(j >> 8), byte(j)})
			out = m.Handle(ev, out[:0])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if m.Stats().InProgress != DefaultMaxAttempts {
			b.Fatalf("%d attempts", m.Stats().InProgress)
		}
		held := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(held/(1<<20), "MiB")
		b.ReportMetric(held/DefaultMaxAttempts, "B/attempt")
		runtime.KeepAlive(m)
	}
}

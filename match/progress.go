package match

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// An Attempt is a knocker's progress on one door.
type Attempt struct {
	Door  string     // the door's section
	Src   netip.Addr // the knocker
	Stage int        // knocks matched so far
	Since time.Time  // the first knock
	Until time.Time  // when it times out
}

// Attempts lists up to max attempts in progress, the oldest of each
// timeout group first, and sorted by when they time out. It costs O(max)
// on the matcher's goroutine, whatever the number of attempts.
func (m *Matcher) Attempts(max int) []Attempt {
	var out []Attempt
	for g := range m.groups {
		gr := &m.groups[g]
		for i, n := gr.l.head, 0; i != none && n < max; n++ {
			a := &m.atts[i]
			since := m.epoch.Add(time.Duration(a.start))
			out = append(out, Attempt{Door: m.doors[a.door].cfg.Name, Src: a.src.addr(a.kind), Stage: int(a.stage),
				Since: since, Until: since.Add(gr.timeout)})
			i = a.link[byTimeout].next
		}
	}
	slices.SortStableFunc(out, func(a, b Attempt) int { return a.Until.Compare(b.Until) })
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// loopStats are a Loop's matcher counters, published after every batch
// so that readers on other goroutines never wait for the matcher.
type loopStats struct {
	inProgress, maxAttempts atomic.Int64
	evicted, refused        atomic.Uint64
}

func (s *loopStats) publish(m *Matcher) {
	s.inProgress.Store(int64(m.count))
	s.maxAttempts.Store(int64(m.max))
	s.evicted.Store(m.evicted)
	s.refused.Store(m.refused)
}

// Stats returns the matcher's counters as of its last batch, expiry or
// Do, without waiting for it: InProgress, Evicted, Refused and
// MaxAttempts (Bytes is left zero). Safe for concurrent use.
func (l *Loop) Stats() Stats {
	return Stats{InProgress: int(l.stats.inProgress.Load()), Evicted: l.stats.evicted.Load(),
		Refused: l.stats.refused.Load(), MaxAttempts: int(l.stats.maxAttempts.Load())}
}

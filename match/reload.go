package match

import (
	"cmp"
	"slices"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// Reload replaces the doors. Attempts in progress on a door that keeps
// its name, sequence, target, flags, sources and timeout go on (on a
// time-derived door, those on a step it still accepts); the others end
// without a log line, since their door no longer exists as they knew it
// (with Options.Explain, as Ended actions for TakeEnded).
func (m *Matcher) Reload(doors []*config.Door) {
	old := slices.Clone(m.doors)
	keep := m.attempts(func(di int32) (int32, bool) { return di, true })
	m.setDoors(doors)
	type nameKey struct {
		name    string
		derived bool
		step    uint64
	}
	at := make(map[nameKey]int32, len(m.doors))
	for i, d := range m.doors {
		at[nameKey{d.cfg.Name, d.derived, d.step}] = int32(i)
	}
	kept := keep[:0]
	for _, k := range keep {
		od := &old[k.door]
		ni, ok := at[nameKey{od.cfg.Name, od.derived, od.step}]
		if od.disabled || !ok || m.doors[ni].disabled || m.doors[ni].retiring || !sameMatching(od.cfg, od.seq, m.doors[ni].cfg, m.doors[ni].seq) {
			if m.opts.Explain && k.stage != 0 {
				m.ended = appendWhy(m.ended, Ended, Reloaded, od.cfg, k.src.addr(k.kind), int(k.stage), wire.Knock{}, 0, m.now)
			}
			continue
		}
		k.door = ni
		kept = append(kept, k)
	}
	m.restore(kept, false)
}

// TakeEnded appends to out the Ended actions of the attempts the last
// Reload ended (with Options.Explain; none without), and forgets them.
func (m *Matcher) TakeEnded(out []Action) []Action {
	out = append(out, m.ended...)
	m.ended = m.ended[:0]
	return out
}

// SetMaxAttempts changes the cap on attempts in progress, as
// Options.MaxAttempts sets it (0 means DefaultMaxAttempts). The attempts
// in progress go on where they fit under the new cap; beyond it, those at
// stage 1 give way first, the oldest first, and each one that does is
// counted as evicted. The source table is sized anew for the cap.
func (m *Matcher) SetMaxAttempts(n int) {
	n = capFor(n)
	if n == m.max {
		return
	}
	keep := m.attempts(func(di int32) (int32, bool) { return di, true })
	if len(keep) > n {
		// The furthest along first, then the newest.
		slices.SortStableFunc(keep, func(a, b kept) int {
			if c := cmp.Compare(min(b.stage, 2), min(a.stage, 2)); c != 0 {
				return c
			}
			return cmp.Compare(b.start, a.start)
		})
		m.evicted += uint64(len(keep) - n)
		keep = keep[:n]
		slices.SortStableFunc(keep, func(a, b kept) int { return cmp.Compare(a.start, b.start) })
	}
	m.max = n
	m.tab = newTable(n)
	m.atts = newAttempts(n)
	m.restore(keep, true)
}

// kept is an attempt in progress while the state is rebuilt.
type kept struct {
	src   srcKey
	kind  addrKind
	hash  uint32
	start int64
	door  int32
	stage int32
}

// attempts returns the attempts in progress, oldest first, for which
// newDoor, given the index of an attempt's door, returns true, with the
// door index it returns.
func (m *Matcher) attempts(newDoor func(di int32) (int32, bool)) []kept {
	var keep []kept
	// Walk the sources' chains in the order of their heads in m.atts, not
	// in table order, which depends on the hash seed: the order in which
	// attempts that started together are restored is then reproducible.
	for h := range m.atts {
		a := &m.atts[h]
		if a.stage == 0 {
			continue
		}
		if pos, ok := m.tab.find(a.src, a.hash, m.atts); !ok || m.tab.head(pos) != int32(h) {
			continue
		}
		for i := int32(h); i != none; i = m.atts[i].srcNext {
			a := &m.atts[i]
			if ni, ok := newDoor(a.door); ok {
				keep = append(keep, kept{a.src, a.kind, a.hash, a.start, ni, a.stage})
			}
		}
	}
	slices.SortStableFunc(keep, func(a, b kept) int { return cmp.Compare(a.start, b.start) })
	return keep
}

// restore empties the state and starts the attempts in keep again, in
// order, at their stage. rehash says the table is new, so that the
// hashes in keep are stale.
func (m *Matcher) restore(keep []kept, rehash bool) {
	m.atts = m.atts[:0]
	m.free = none
	m.count = 0
	m.stage1 = [2]list{{none, none}, {none, none}}
	m.n1 = [2]int{}
	for g := range m.groups {
		m.groups[g].l = list{none, none}
	}
	m.tab.clear()
	for _, k := range keep {
		if rehash {
			k.hash = m.tab.hash(k.src)
		}
		i := m.add(k.door, k.src, k.kind, k.hash, k.start, true)
		if i == none || k.stage == 1 {
			continue
		}
		// add starts at stage 1: move the attempt to where it was.
		m.unlinkStage(i)
		m.atts[i].stage = k.stage
	}
}

func sameMatching(old *config.Door, oldSeq []wire.Knock, nd *config.Door, newSeq []wire.Knock) bool {
	return slices.Equal(oldSeq, newSeq) && old.Target == nd.Target &&
		old.Flags == nd.Flags && old.SeqTimeout == nd.SeqTimeout && slices.Equal(old.Sources, nd.Sources)
}

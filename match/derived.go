package match

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/seqderive"
)

// Steps records the steps of time-derived doors (config.Door.SecretFile)
// that have opened, so that no step opens twice, across restarts too.
// Doors with the same secret and the same Sequence_Step share their
// record (and the matcher spends a step on all of them when one opens).
// Its methods run on the matcher's goroutine.
type Steps interface {
	// Used returns the step counters recorded as used for d, in any
	// order.
	Used(d *config.Door) []uint64
	// Use records step c of d as used. It returns once the record is
	// durable: the opening runs only after it. An error means the step
	// was not recorded.
	Use(d *config.Door, c uint64) error
}

// MemSteps is a Steps that keeps its record in memory only, for tests
// and for a matcher given no Steps. The zero value is ready to use.
type MemSteps struct {
	mu   sync.Mutex
	used map[string][]uint64
}

func stepsKey(d *config.Door) string {
	return fmt.Sprintf("%x/%d", d.Secret, d.Derive.Step/time.Second)
}

// Used implements Steps.
func (s *MemSteps) Used(d *config.Door) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.used[stepsKey(d)])
}

// Use implements Steps.
func (s *MemSteps) Use(d *config.Door, c uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used == nil {
		s.used = map[string][]uint64{}
	}
	k := stepsKey(d)
	s.used[k] = append(s.used[k], c)
	return nil
}

// derived is a time-derived door's state: the steps it accepts now, the
// steps whose attempts in progress may still complete, and what is used.
type derived struct {
	cfg *config.Door // as configured, with no sequence
	cur uint64       // the current step counter
	// steps are the steps the door has doors for, in ascending order:
	// the window (cur-1 to cur+1) and the retiring ones before it.
	steps []dstep
	// last is the highest step used, valid iff anyUsed: every step up
	// to it is spent. used are the steps that opened a door, for the
	// log line of a replay.
	last    uint64
	anyUsed bool
	used    []uint64
}

// dstep is a step a derived door has a door for.
type dstep struct {
	c   uint64
	cfg *config.Door // cfg.Derived(c)
	// retire, when not zero, is when a step that has left the window is
	// dropped: it takes no new attempt, but those in progress on it may
	// complete until their Seq_Timeout, which ends by then.
	retire time.Time
}

func (dv *derived) spent(c uint64) bool { return dv.anyUsed && c <= dv.last }

// window returns the step counters accepted at counter cur.
func window(cur uint64) []uint64 {
	var w []uint64
	if cur >= seqderive.Window {
		w = append(w, cur-seqderive.Window)
	}
	for c := cur; c <= cur+seqderive.Window; c++ {
		w = append(w, c)
	}
	return w
}

// newDerived returns the state of the time-derived door d at now.
func newDerived(d *config.Door, used []uint64, now time.Time) *derived {
	dv := &derived{cfg: d}
	for _, c := range used {
		dv.markUsed(c)
	}
	dv.cur = seqderive.Counter(now, d.Derive.Step)
	for _, c := range window(dv.cur) {
		dv.steps = append(dv.steps, dstep{c: c, cfg: d.Derived(c)})
	}
	return dv
}

func (dv *derived) markUsed(c uint64) {
	if !dv.anyUsed || c > dv.last {
		dv.last, dv.anyUsed = c, true
	}
	if !slices.Contains(dv.used, c) {
		dv.used = append(dv.used, c)
	}
	// Only the recent ones can be in a window again; the rest are
	// spent by last.
	if len(dv.used) > 64 {
		slices.Sort(dv.used)
		dv.used = slices.Delete(dv.used, 0, len(dv.used)-64)
	}
}

// move brings dv to now: steps that left the window retire, retired
// ones whose time is up are dropped, and new ones join. It reports
// whether anything changed.
func (dv *derived) move(now time.Time) bool {
	changed := false
	cur := seqderive.Counter(now, dv.cfg.Derive.Step)
	win := window(cur)
	kept := dv.steps[:0:0]
	for _, s := range dv.steps {
		switch {
		case slices.Contains(win, s.c):
			s.retire = time.Time{}
		case s.retire.IsZero():
			s.retire = now.Add(dv.cfg.SeqTimeout)
			changed = true
		case !now.Before(s.retire):
			changed = true
			continue
		}
		kept = append(kept, s)
	}
	for _, c := range win {
		if !slices.ContainsFunc(kept, func(s dstep) bool { return s.c == c }) {
			kept = append(kept, dstep{c: c, cfg: dv.cfg.Derived(c)})
			changed = true
		}
	}
	slices.SortFunc(kept, func(a, b dstep) int {
		switch {
		case a.c < b.c:
			return -1
		case a.c > b.c:
			return 1
		}
		return 0
	})
	dv.cur, dv.steps = cur, kept
	return changed
}

// due returns when dv must move next: the start of the next step, or a
// retiring step's end, whichever comes first.
func (dv *derived) due() time.Time {
	t := seqderive.StepStart(dv.cur+1, dv.cfg.Derive.Step)
	for _, s := range dv.steps {
		if !s.retire.IsZero() && s.retire.Before(t) {
			t = s.retire
		}
	}
	return t
}

// setDue computes when the next derived door must move.
func (m *Matcher) setDue() {
	m.stepDue = time.Time{}
	for ci, dv := range m.derived {
		if dv == nil || m.derivedOff[ci] {
			continue
		}
		if t := dv.due(); m.stepDue.IsZero() || t.Before(m.stepDue) {
			m.stepDue = t
		}
	}
}

// doorKey identifies a door across a rebuild: a configured door, and for
// a derived one, the step.
type doorKey struct {
	ci   int32
	step uint64
}

func (d *door) key() doorKey {
	if d.derived {
		return doorKey{d.ci, d.step}
	}
	return doorKey{ci: d.ci}
}

// moveSteps moves the derived doors to now, rebuilding the doors if a
// step joined or left; attempts in progress on the steps that remain go
// on. It appends a NewSteps action for each door that changed.
func (m *Matcher) moveSteps(now time.Time, out []Action) []Action {
	var changed []int32
	for ci, dv := range m.derived {
		if dv != nil && !m.derivedOff[ci] && dv.move(now) {
			changed = append(changed, int32(ci))
		}
	}
	m.setDue()
	if len(changed) == 0 && !m.relayoutDue {
		return out
	}
	m.relayoutDue = false
	m.relayout()
	for _, ci := range changed {
		out = appendAction(out, NewSteps, m.derived[ci].cfg, netip.Addr{}, 0, now, nil)
	}
	return out
}

// relayout rebuilds m.doors from the configured doors and the derived
// doors' steps, keeping the attempts in progress on doors that remain.
func (m *Matcher) relayout() {
	old := slices.Clone(m.doors)
	keep := m.attempts(func(di int32) (int32, bool) { return di, true })
	m.layout(old)
	at := make(map[doorKey]int32, len(m.doors))
	for i := range m.doors {
		at[m.doors[i].key()] = int32(i)
	}
	kept := keep[:0]
	for _, k := range keep {
		if ni, ok := at[old[k.door].key()]; ok && !m.doors[ni].disabled {
			k.door = ni
			kept = append(kept, k)
		}
	}
	m.restore(kept, false)
}

// layout builds m.doors: the plain doors as they are in old (a one-time
// door's current sequence), or from m.conf when old is nil, and a door
// for each step of each derived door.
func (m *Matcher) layout(old []door) {
	plain := map[int32]door{}
	for _, d := range old {
		if !d.derived {
			plain[d.ci] = d
		}
	}
	m.doors = m.doors[:0]
	m.groups = m.groups[:0]
	for ci, c := range m.conf {
		ci := int32(ci)
		if dv := m.derived[ci]; dv != nil {
			if m.derivedOff[ci] {
				continue
			}
			for _, s := range dv.steps {
				m.doors = append(m.doors, door{cfg: s.cfg, seq: s.cfg.Sequence, ci: ci, derived: true, step: s.c,
					retiring: !s.retire.IsZero(), disabled: len(s.cfg.Sequence) == 0})
			}
			continue
		}
		if d, ok := plain[ci]; ok && old != nil {
			m.doors = append(m.doors, d)
			continue
		}
		m.doors = append(m.doors, door{cfg: c, seq: c.Sequence, ci: ci, disabled: len(c.Sequence) == 0})
	}
	for i := range m.doors {
		d := &m.doors[i]
		g := slices.IndexFunc(m.groups, func(g group) bool { return g.timeout == d.cfg.SeqTimeout })
		if g < 0 {
			g = len(m.groups)
			m.groups = append(m.groups, group{timeout: d.cfg.SeqTimeout, l: list{none, none}})
		}
		d.group = g
	}
	m.index()
}

// openDerived decides an opening of door di, a step of a derived door:
// a spent step opens nothing and is reported as a replay; otherwise the
// step is recorded as used, durably, before the opening is reported.
func (m *Matcher) openDerived(di int32, src netip.Addr, now time.Time, out []Action) []Action {
	d := &m.doors[di]
	dv := m.derived[d.ci]
	if dv.spent(d.step) {
		kind := Stale
		if slices.Contains(dv.used, d.step) {
			kind = Replay
		}
		return appendAction(out, kind, d.cfg, src, 0, now, nil)
	}
	if err := m.opts.Steps.Use(dv.cfg, d.step); err != nil {
		// An opening that is not on record could be replayed after a
		// restart: refuse it and stop the door. Its steps' doors are
		// disabled at once; they leave m.doors, with their attempts, at
		// the next moveSteps, which is due now: handle may be walking a
		// source's attempts, which must not move under it.
		ci := d.ci
		m.derivedOff[ci] = true
		for i := range m.doors {
			if m.doors[i].derived && m.doors[i].ci == ci {
				m.doors[i].disabled = true
			}
		}
		m.index()
		m.relayoutDue = true
		m.stepDue = now
		return append(out, Action{Kind: Disabled, Door: dv.cfg, Time: now,
			Err: &disableError{fmt.Sprintf("error while recording the used step of door %s", dv.cfg.Name), err}})
	}
	// Doors with the same secret and step share the record: the step
	// is spent on each of them.
	for _, o := range m.derived {
		if o != nil && o.cfg.Derive.Step == dv.cfg.Derive.Step && bytes.Equal(o.cfg.Secret, dv.cfg.Secret) {
			o.markUsed(d.step)
		}
	}
	return append(out, Action{Kind: Open, Door: d.cfg, Src: src, Time: now})
}

package match

import "time"

// offset returns t as an attempt time: ns since the epoch, which is the
// first time the matcher sees. Differences of offsets are differences of
// times, by the monotonic clock when the times carry it, as with Sub.
//
// Offsets stay within ±offsetLimit, so that their differences never
// overflow: a time further after the epoch becomes the new epoch (see
// rebase), and one further before is clamped.
func (m *Matcher) offset(t time.Time) int64 {
	if !m.epochOK {
		m.setEpoch(t)
	}
	if m.epochWall {
		// t.Sub(m.epoch) goes by the wall clock, whatever t carries:
		// compute it here as Sub does, but without its check for
		// overflow, which costs more than the rest, when t is not too
		// far from the epoch.
		if ds, ok := secondsApart(t.Unix(), m.epochSec); ok {
			return ds*int64(time.Second) + int64(t.Nanosecond()) - m.epochNsec
		}
	}
	switch d := int64(t.Sub(m.epoch)); {
	case d <= -offsetLimit:
		// Only Expire asks about times before the matcher's own, and
		// at over a century before, whatever it asks about has not
		// expired.
		return -offsetLimit + 1
	case d >= offsetLimit:
		m.rebase(t)
		return 0
	default:
		return d
	}
}

// secondsApart returns a - b if it is within ±maxOffsetSec.
func secondsApart(a, b int64) (int64, bool) {
	if a >= b {
		d := uint64(a) - uint64(b) // no overflow, unsigned
		return int64(d), d < maxOffsetSec
	}
	d := uint64(b) - uint64(a)
	return -int64(d), d < maxOffsetSec
}

const (
	// offsetLimit bounds offsets, to about 146 years either side of the
	// epoch.
	offsetLimit = 1 << 62
	// maxOffsetSec bounds the offsets computed without time.Time.Sub,
	// within offsetLimit.
	maxOffsetSec = 1 << 32
)

func (m *Matcher) setEpoch(t time.Time) {
	m.epoch, m.epochOK = t, true
	// Round(0) strips a monotonic clock reading, and only that.
	m.epochWall = t == t.Round(0)
	m.epochSec, m.epochNsec = t.Unix(), int64(t.Nanosecond())
}

// rebase makes t, too far after the epoch for an offset, the new epoch,
// and moves the offsets in hand to it. Those that end up over a century
// before t are clamped there: whatever the Seq_Timeout, short of that,
// they have expired, as with Sub, which saturates.
func (m *Matcher) rebase(t time.Time) {
	delta := int64(t.Sub(m.epoch)) // ≥ offsetLimit, saturated
	move := func(off int64) int64 {
		if d := off - delta; d > -offsetLimit && d < off {
			return d
		}
		return -offsetLimit + 1
	}
	for i := range m.atts {
		if a := &m.atts[i]; a.stage != 0 {
			a.start = move(a.start)
		}
	}
	m.nowOff = move(m.nowOff)
	m.setEpoch(t)
}

// elapsed returns now - start.
func elapsed(now, start int64) int64 { return now - start }

// advance returns the time of an event at t and its offset: t, or the
// matcher's time if t is before it (sources may deliver slightly out of
// order; time never goes back), which moves on to t if t is after.
func (m *Matcher) advance(t time.Time) (time.Time, int64) {
	if t == m.now && m.epochOK {
		// The same time as the last event's, as in a burst: skip the
		// arithmetic.
		return m.now, m.nowOff
	}
	switch c := t.Compare(m.now); {
	case c < 0 && m.epochOK:
		return m.now, m.nowOff
	case c < 0:
		return m.now, m.offset(m.now)
	case c > 0:
		m.now = t
		m.nowOff = m.offset(t)
		return t, m.nowOff
	}
	return t, m.offset(t)
}

// due reports whether some attempt's Seq_Timeout has passed at nowOff.
func (m *Matcher) due(nowOff int64) bool {
	for g := range m.groups {
		gr := &m.groups[g]
		if gr.l.head != none && elapsed(nowOff, m.atts[gr.l.head].start) >= int64(gr.timeout) {
			return true
		}
	}
	return false
}

// Expire ends the attempts whose Seq_Timeout has passed at now.
func (m *Matcher) Expire(now time.Time, out []Action) []Action {
	nowOff := m.offset(now)
	if now.After(m.now) {
		m.now, m.nowOff = now, nowOff
	}
	out = m.expire(now, nowOff, out)
	if !m.stepDue.IsZero() && !m.now.Before(m.stepDue) {
		out = m.moveSteps(m.now, out)
	}
	return out
}

func (m *Matcher) expire(now time.Time, nowOff int64, out []Action) []Action {
	for g := range m.groups {
		gr := &m.groups[g]
		for gr.l.head != none {
			i := gr.l.head
			a := &m.atts[i]
			if elapsed(nowOff, a.start) < int64(gr.timeout) {
				break
			}
			out = appendAction(out, Timeout, m.doors[a.door].cfg, a.src.addr(a.kind), int(a.stage), now, nil)
			m.removeAttempt(i)
		}
	}
	return out
}

// NextDeadline returns when the next attempt expires, or a time-derived
// door moves to its next step, whichever comes first; ok is false when
// neither is to come.
func (m *Matcher) NextDeadline() (t time.Time, ok bool) {
	if !m.stepDue.IsZero() {
		t, ok = m.stepDue, true
	}
	for _, g := range m.groups {
		if g.l.head == none {
			continue
		}
		d := m.epoch.Add(time.Duration(m.atts[g.l.head].start)).Add(g.timeout)
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}

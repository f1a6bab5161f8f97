// Package match turns knock events into door openings. One goroutine owns
// all state; time comes from the events and from timers, never from a
// wall clock read inside the matching code.
//
// Its API serves this module's commands and is not yet stable.
package match

import (
	"net/netip"
	"slices"
	"time"
	"unsafe"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// DefaultMaxAttempts is the cap on attempts in progress when Options
// gives none. At a million spoofed first knocks a second, a knocker at
// stage 1 outlives about half a second of them; its state, with the
// source table, is 48 MiB (see Stats.Bytes).
const DefaultMaxAttempts = 1 << 19

// Options tune a Matcher. The zero value is usable.
type Options struct {
	// MaxAttempts caps the attempts in progress; 0 means
	// DefaultMaxAttempts, and it is at most 1<<28. When full, a new
	// attempt (at stage 1) pushes out the oldest attempt at stage 1 of
	// the address family (IPv4 or IPv6) that holds more of them, so that
	// a stage-1 attempt outlives MaxAttempts-1 newer ones, less those
	// further along and the other family's, and a flood of one family
	// cannot push out the other's knockers. An attempt further along is never pushed out: when all
	// are, the new one is refused.
	MaxAttempts int
	// OneTime is called when a one-time door opens, before the Open
	// action is returned. Nil uses config.UseOneTime.
	OneTime OneTimeFunc
	// Steps records the used steps of time-derived doors; Use is called
	// when one opens, before the Open action is returned. Nil keeps the
	// record in memory only (a MemSteps).
	Steps Steps
	// Now is the clock read when doors are set (by New and Reload), to
	// choose the steps time-derived doors accept until the first event
	// or timer; after that, time comes from them. Nil means time.Now.
	Now func() time.Time
	// Explain reports Ended and Ignored actions: why attempts end
	// without opening, and why knocks are not taken (knockd -D). Off,
	// they cost nothing.
	Explain bool
}

// Stats are counters of the matcher's state.
type Stats struct {
	// InProgress is the number of attempts in progress.
	InProgress int
	// Evicted counts attempts pushed out to make room.
	Evicted uint64
	// Refused counts new attempts not started because the state was
	// full of further advanced ones.
	Refused uint64
	// MaxAttempts is the cap on attempts in effect.
	MaxAttempts int
	// Bytes is the memory allocated for the attempts and the source
	// table: for a cap up to a million, all they can need, up front (the
	// pages are used only as attempts fill them); above it, what they
	// have grown to. It changes only with the cap.
	Bytes int
}

type door struct {
	cfg      *config.Door
	seq      []wire.Knock
	group    int   // index into Matcher.groups
	ci       int32 // index into Matcher.conf
	disabled bool
	// derived marks a step of a time-derived door: step is its step
	// counter, and retiring says the step has left the window, so that
	// it takes no new attempt.
	derived  bool
	retiring bool
	step     uint64
}

// group holds the attempts of all doors sharing one Seq_Timeout. Their
// deadlines come in the order the attempts started.
type group struct {
	timeout time.Duration
	l       list
}

type knockKey uint32

func keyOf(proto wire.Proto, port uint16) knockKey {
	return knockKey(proto)<<16 | knockKey(port)
}

// firstIndex finds the doors by their first knock: a short list scanned
// in order when there are few first knocks, a map otherwise.
type firstIndex struct {
	keys  []knockKey
	doors [][]int32
	m     map[knockKey][]int32
}

const firstScanMax = 8

// gateIndex holds, for each (protocol, port) that only doors with a
// Source list knock on, the union of their lists: a knock there from any
// other source counts for nothing at all, as if the capture had not seen
// it (the raw backend's kernel filter drops it already). Ports that some
// door without a Source list knocks on are not in it.
type gateIndex struct {
	keys []knockKey
	srcs [][]netip.Prefix
	m    map[knockKey][]netip.Prefix
}

// passes reports whether a knock from src to k may count.
func (g *gateIndex) passes(k knockKey, src netip.Addr) bool {
	var srcs []netip.Prefix
	if g.m != nil {
		var ok bool
		if srcs, ok = g.m[k]; !ok {
			return true
		}
	} else {
		i := slices.Index(g.keys, k)
		if i < 0 {
			return true
		}
		srcs = g.srcs[i]
	}
	return slices.ContainsFunc(srcs, func(p netip.Prefix) bool { return p.Contains(src) })
}

func (f *firstIndex) lookup(k knockKey) []int32 {
	if f.m != nil {
		return f.m[k]
	}
	if i := slices.Index(f.keys, k); i >= 0 {
		return f.doors[i]
	}
	return nil
}

// maxAttemptsLimit caps MaxAttempts so that attempt indexes and table
// positions fit in 32 bits, and the table's size in an int on 32-bit
// platforms.
const maxAttemptsLimit = 1 << 28

// Matcher holds the knock state. It is not safe for concurrent use: one
// goroutine owns it (see Run).
type Matcher struct {
	opts  Options
	max   int
	doors []door
	// conf are the doors as configured; derived holds, at the index of
	// each time-derived one, its state (nil for the others), and
	// derivedOff marks those switched off. stepDue is when the next of
	// them must move on (see moveSteps); zero when there is none.
	conf       []*config.Door
	derived    []*derived
	derivedOff []bool
	stepDue    time.Time
	// relayoutDue says that doors were disabled, to be taken out of
	// m.doors at the next moveSteps.
	relayoutDue bool
	first       firstIndex
	gate        gateIndex
	groups      []group
	// stage1 lists the attempts at stage 1 by family (see family),
	// oldest first, and n1 counts them.
	stage1  [2]list
	n1      [2]int
	atts    []attempt
	free    int32
	count   int
	tab     table     // source → head of its chain of attempts
	now     time.Time // the latest event or expiry time
	nowOff  int64     // now's offset, once epochOK
	epoch   time.Time // origin of attempt.start; the first time seen
	epochOK bool
	// epochWall is set if epoch carries no monotonic clock reading, and
	// epochSec and epochNsec are its Unix time; see offset.
	epochWall           bool
	epochSec, epochNsec int64
	evicted             uint64
	refused             uint64
	// victim is the attempt add last evicted, kept for an Ended action
	// iff opts.Explain.
	victim    victim
	hasVictim bool
	// ended are the Ended actions of the attempts Reload ended, iff
	// opts.Explain; see TakeEnded.
	ended []Action
	// sink folds in the loads that warm the caches, and warmEvicted is
	// evicted as warm last saw it; see HandleBatch.
	sink        uint32
	warmEvicted uint64
}

// New returns a Matcher for doors.
func New(doors []*config.Door, opts Options) *Matcher {
	m := &Matcher{opts: opts, free: none, stage1: [2]list{{none, none}, {none, none}}}
	m.max = capFor(opts.MaxAttempts)
	if m.opts.OneTime == nil {
		m.opts.OneTime = config.UseOneTime
	}
	if m.opts.Steps == nil {
		m.opts.Steps = &MemSteps{}
	}
	if m.opts.Now == nil {
		m.opts.Now = time.Now
	}
	m.tab = newTable(m.max)
	m.atts = newAttempts(m.max)
	m.setDoors(doors)
	return m
}

// setDoors replaces the doors with doors, time-derived ones at the
// steps of the clock (or of the latest event, if later).
func (m *Matcher) setDoors(doors []*config.Door) {
	now := m.opts.Now()
	if m.now.After(now) {
		now = m.now
	}
	m.conf = doors
	m.derived = make([]*derived, len(doors))
	m.derivedOff = make([]bool, len(doors))
	for i, d := range doors {
		if d.SecretFile != "" {
			m.derived[i] = newDerived(d, m.opts.Steps.Used(d), now)
		}
	}
	m.relayoutDue = false
	m.layout(nil)
	m.setDue()
}

func (m *Matcher) index() {
	f := firstIndex{}
	for i, d := range m.doors {
		if d.disabled || d.retiring {
			continue
		}
		k := keyOf(d.seq[0].Proto, d.seq[0].Port)
		j := slices.Index(f.keys, k)
		if j < 0 {
			j = len(f.keys)
			f.keys = append(f.keys, k)
			f.doors = append(f.doors, nil)
		}
		f.doors[j] = append(f.doors[j], int32(i))
	}
	if len(f.keys) > firstScanMax {
		f.m = make(map[knockKey][]int32, len(f.keys))
		for j, k := range f.keys {
			f.m[k] = f.doors[j]
		}
	}
	m.first = f
	m.indexGate()
}

// indexGate builds the gate from the doors' current sequences.
func (m *Matcher) indexGate() {
	g := gateIndex{}
	open := map[knockKey]bool{} // some door takes any source there
	for _, d := range m.doors {
		if d.disabled {
			continue
		}
		for _, kn := range d.seq {
			k := keyOf(kn.Proto, kn.Port)
			if d.cfg.Sources == nil {
				open[k] = true
				continue
			}
			j := slices.Index(g.keys, k)
			if j < 0 {
				j = len(g.keys)
				g.keys = append(g.keys, k)
				g.srcs = append(g.srcs, nil)
			}
			for _, p := range d.cfg.Sources {
				if !slices.Contains(g.srcs[j], p) {
					g.srcs[j] = append(g.srcs[j], p)
				}
			}
		}
	}
	var kept gateIndex
	for j, k := range g.keys {
		if !open[k] {
			kept.keys = append(kept.keys, k)
			kept.srcs = append(kept.srcs, g.srcs[j])
		}
	}
	if len(kept.keys) > firstScanMax {
		kept.m = make(map[knockKey][]netip.Prefix, len(kept.keys))
		for j, k := range kept.keys {
			kept.m[k] = kept.srcs[j]
		}
	}
	m.gate = kept
}

// Doors returns the doors as they stand now: one-time doors carry their
// current sequence, a time-derived door is there once for each step it
// accepts or whose attempts may still complete, with that step's
// sequence, and disabled doors are left out. Build the capture spec from
// it.
func (m *Matcher) Doors() []*config.Door {
	out := make([]*config.Door, 0, len(m.doors))
	for _, d := range m.doors {
		if !d.disabled {
			out = append(out, d.cfg)
		}
	}
	return out
}

// Stats returns the matcher's counters.
func (m *Matcher) Stats() Stats {
	return Stats{InProgress: m.count, Evicted: m.evicted, Refused: m.refused, MaxAttempts: m.max,
		Bytes: cap(m.atts)*int(unsafe.Sizeof(attempt{})) + cap(m.tab.slots)*int(unsafe.Sizeof(slot{}))}
}

// Handle processes one event and appends the resulting actions to out.
// Attempts whose Seq_Timeout has passed by ev.Time expire first.
func (m *Matcher) Handle(ev capture.Event, out []Action) []Action {
	k, kind := keyOfSrc(ev.Src)
	return m.handle(&ev, k, kind, m.tab.hash(k), out)
}

// handle is Handle for an event whose source has key k, kind kind and
// hash h.
func (m *Matcher) handle(ev *capture.Event, k srcKey, kind addrKind, h uint32, out []Action) []Action {
	now, nowOff := m.advance(ev.Time)
	if m.due(nowOff) {
		out = m.expire(now, nowOff, out)
	}
	if !m.stepDue.IsZero() && !now.Before(m.stepDue) {
		out = m.moveSteps(now, out)
	}
	if len(m.gate.keys) > 0 && !m.gate.passes(keyOf(ev.Proto, ev.Port), ev.Src) {
		return out
	}

	relevant, used, failed := false, false, false
	pos, known := m.tab.find(k, h, m.atts)
	if known {
		prev := int32(none)
		for i := m.tab.head(pos); i != none; {
			a := &m.atts[i]
			next := a.srcNext
			d := &m.doors[a.door]
			if d.disabled || !targetOK(d.cfg, ev.Dst) {
				prev, i = i, next
				continue
			}
			relevant = true
			if ev.Proto == wire.TCP && !d.cfg.Flags.Match(ev.Flags) {
				// knockd ignores such a packet for this door: no reset.
				used = true
				if m.opts.Explain {
					out = appendWhy(out, Ignored, FlagsMismatch, d.cfg, ev.Src, int(a.stage), wire.Knock{Port: ev.Port, Proto: ev.Proto}, ev.Flags, now)
				}
				prev, i = i, next
				continue
			}
			k := wire.Knock{Port: ev.Port, Proto: ev.Proto}
			switch {
			case d.seq[a.stage] == k:
				used = true
				if a.stage == 1 {
					m.unlinkStage(i)
				}
				a.stage++
				out = appendAction(out, Stage, d.cfg, ev.Src, int(a.stage), now, nil)
				if int(a.stage) == len(d.seq) {
					di := a.door
					m.removeFrom(i, prev)
					out = m.open(di, ev.Src, now, out)
					i = next
					continue
				}
			case d.seq[a.stage-1] == k:
				// A repeat of the knock that just matched (a
				// retransmitted SYN, a second connection): ignore it.
				used = true
			default:
				failed = true
				if m.opts.Explain {
					out = appendWhy(out, Ended, WrongKnock, d.cfg, ev.Src, int(a.stage), k, 0, now)
				}
				m.removeFrom(i, prev)
				i = next
				continue
			}
			prev, i = i, next
		}
	}
	if relevant && (used || !failed) {
		return out
	}
	for _, di := range m.first.lookup(keyOf(ev.Proto, ev.Port)) {
		d := &m.doors[di]
		if d.disabled || !targetOK(d.cfg, ev.Dst) || !d.cfg.SourceOK(ev.Src) {
			continue
		}
		if ev.Proto == wire.TCP && !d.cfg.Flags.Match(ev.Flags) {
			if m.opts.Explain {
				out = appendWhy(out, Ignored, FlagsMismatch, d.cfg, ev.Src, 0, wire.Knock{Port: ev.Port, Proto: ev.Proto}, ev.Flags, now)
			}
			continue
		}
		out = appendAction(out, Stage, d.cfg, ev.Src, 1, now, nil)
		if len(d.seq) == 1 {
			out = m.open(di, ev.Src, now, out)
			continue
		}
		if m.add(di, k, kind, h, nowOff, known) != none {
			known = true
		} else if m.opts.Explain {
			out = appendWhy(out, Ignored, Refused, d.cfg, ev.Src, 0, wire.Knock{Port: ev.Port, Proto: ev.Proto}, 0, now)
		}
		if m.hasVictim {
			v := m.victim
			m.hasVictim = false
			out = appendWhy(out, Ended, Evicted, v.door, v.src, v.stage, wire.Knock{}, 0, now)
		}
	}
	return out
}

func targetOK(d *config.Door, dst netip.Addr) bool {
	return !d.Target.IsValid() || d.Target == dst
}

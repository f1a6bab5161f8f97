// Package match turns knock events into door openings. One goroutine owns
// all state; time comes from the events and from timers, never from a
// wall clock read inside the matching code.
package match

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
)

// Kind says what an Action reports.
type Kind uint8

// The kinds of Action, each tied to one of knockd's log lines.
const (
	// Stage: Src advanced to Stage on Door ("IP: door: Stage N").
	Stage Kind = iota + 1
	// Open: Src completed Door's sequence ("IP: door: OPEN SESAME").
	Open
	// Timeout: Src's attempt on Door expired at Stage ("IP: door:
	// sequence timeout (stage N)").
	Timeout
	// Disabled: Door was switched off; Err says why (its one-time
	// sequences ran out, or the file could not be updated).
	Disabled
	// NewSequence: Door's one-time sequence moved on; the capture spec
	// must be rebuilt from Doors.
	NewSequence
)

func (k Kind) String() string {
	switch k {
	case Stage:
		return "Stage"
	case Open:
		return "Open"
	case Timeout:
		return "Timeout"
	case Disabled:
		return "Disabled"
	case NewSequence:
		return "NewSequence"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Action is something the daemon must log or do.
type Action struct {
	Kind Kind
	// Door is the door concerned, as configured when the action happened.
	Door *config.Door
	// Src is the knocker. Invalid for Disabled and NewSequence.
	Src netip.Addr
	// Stage is the number of knocks matched. Valid iff Kind is Stage or
	// Timeout.
	Stage int
	// Time is the event or timer time that caused the action.
	Time time.Time
	// Err is the reason. Valid iff Kind == Disabled.
	Err error
}

// OneTimeFunc marks the sequence a one-time door just used as spent and
// returns the door's next sequence and its offset in the file. It returns
// an error wrapping config.ErrNoSequence when none is left.
type OneTimeFunc func(d *config.Door) (next []config.Knock, off int64, err error)

// DefaultMaxAttempts is the cap on attempts in progress when Options
// gives none.
const DefaultMaxAttempts = 1 << 18

// Options tune a Matcher. The zero value is usable.
type Options struct {
	// MaxAttempts caps the attempts in progress; 0 means
	// DefaultMaxAttempts. When full, the least advanced and oldest
	// attempt makes room, but only for an attempt at least as advanced.
	MaxAttempts int
	// OneTime is called when a one-time door opens, before the Open
	// action is returned. Nil uses config.UseOneTime and
	// config.NextOneTime.
	OneTime OneTimeFunc
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
}

const none = -1

// disableError reads as knockd's log line and keeps its cause underneath.
type disableError struct {
	msg   string
	cause error
}

func (e *disableError) Error() string { return e.msg }
func (e *disableError) Unwrap() error { return e.cause }

// attempt is one source's progress on one door. Attempts live in a slice
// and link to each other by index, so the steady state allocates nothing.
type attempt struct {
	src     netip.Addr
	start   time.Time
	door    int32
	stage   int32 // knocks matched so far, 1..len(sequence)-1
	srcNext int32 // next attempt of the same source, or the free list
	// link holds the attempt's places in two lists, oldest first: its
	// timeout group's (byTimeout) and its stage's (byStage).
	link   [2]links
	lstage int32 // the stage whose list holds the attempt
}

type links struct{ prev, next int32 }

// Indexes into attempt.link.
const (
	byTimeout = 0
	byStage   = 1
)

type list struct{ head, tail int32 }

type door struct {
	cfg      *config.Door
	seq      []config.Knock
	group    int // index into Matcher.groups
	disabled bool
}

// group holds the attempts of all doors sharing one Seq_Timeout. Their
// deadlines come in the order the attempts started.
type group struct {
	timeout time.Duration
	l       list
}

// srcKey is a source address as a map key. netip.Addr holds a pointer
// (its zone), which makes every lookup compare more and the garbage
// collector scan the whole map; the 16 bytes alone do neither. Event
// sources carry no zone.
type srcKey [16]byte

func keyOfSrc(a netip.Addr) srcKey { return a.As16() }

type knockKey uint32

func keyOf(proto config.Proto, port uint16) knockKey {
	return knockKey(proto)<<16 | knockKey(port)
}

// Matcher holds the knock state. It is not safe for concurrent use: one
// goroutine owns it (see Run).
type Matcher struct {
	opts    Options
	max     int
	doors   []door
	first   map[knockKey][]int32 // doors by their first knock
	groups  []group
	stages  [config.MaxSequence + 1]list
	atts    []attempt
	free    int32
	count   int
	bySrc   map[srcKey]int32
	now     time.Time
	evicted uint64
	refused uint64
}

// New returns a Matcher for doors.
func New(doors []*config.Door, opts Options) *Matcher {
	m := &Matcher{opts: opts, free: none, bySrc: make(map[srcKey]int32)}
	m.max = opts.MaxAttempts
	if m.max <= 0 {
		m.max = DefaultMaxAttempts
	}
	if m.opts.OneTime == nil {
		m.opts.OneTime = useOneTimeFile
	}
	for i := range m.stages {
		m.stages[i] = list{none, none}
	}
	m.setDoors(doors)
	return m
}

func useOneTimeFile(d *config.Door) ([]config.Knock, int64, error) {
	if err := config.UseOneTime(d.OneTimeFile, d.OneTimeOffset); err != nil {
		return nil, 0, err
	}
	seq, off, _, err := config.NextOneTime(d.OneTimeFile, d.OneTimeOffset+1)
	return seq, off, err
}

func (m *Matcher) setDoors(doors []*config.Door) {
	m.doors = m.doors[:0]
	m.groups = m.groups[:0]
	for _, d := range doors {
		g := slices.IndexFunc(m.groups, func(g group) bool { return g.timeout == d.SeqTimeout })
		if g < 0 {
			g = len(m.groups)
			m.groups = append(m.groups, group{timeout: d.SeqTimeout, l: list{none, none}})
		}
		m.doors = append(m.doors, door{cfg: d, seq: d.Sequence, group: g, disabled: len(d.Sequence) == 0})
	}
	m.index()
}

func (m *Matcher) index() {
	m.first = make(map[knockKey][]int32)
	for i, d := range m.doors {
		if d.disabled {
			continue
		}
		k := keyOf(d.seq[0].Proto, d.seq[0].Port)
		m.first[k] = append(m.first[k], int32(i))
	}
}

// Doors returns the doors as they stand now: one-time doors carry their
// current sequence, and disabled doors are left out. Build the capture
// spec from it.
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
	return Stats{InProgress: m.count, Evicted: m.evicted, Refused: m.refused}
}

// Handle processes one event and appends the resulting actions to out.
// Attempts whose Seq_Timeout has passed by ev.Time expire first.
func (m *Matcher) Handle(ev capture.Event, out []Action) []Action {
	now := ev.Time
	if now.Before(m.now) {
		// Sources may deliver slightly out of order; time never goes back.
		now = m.now
	}
	out = m.Expire(now, out)

	relevant, used, failed := false, false, false
	if head, ok := m.bySrc[keyOfSrc(ev.Src)]; ok {
		prev := int32(none)
		for i := head; i != none; {
			a := &m.atts[i]
			next := a.srcNext
			d := &m.doors[a.door]
			if !targetOK(d.cfg, ev.Dst) {
				prev, i = i, next
				continue
			}
			relevant = true
			if ev.Proto == config.TCP && !d.cfg.Flags.Match(ev.Flags) {
				// knockd ignores such a packet for this door: no reset.
				used = true
				prev, i = i, next
				continue
			}
			k := config.Knock{Port: ev.Port, Proto: ev.Proto}
			switch {
			case d.seq[a.stage] == k:
				used = true
				a.stage++
				out = append(out, Action{Kind: Stage, Door: d.cfg, Src: ev.Src, Stage: int(a.stage), Time: now})
				if int(a.stage) == len(d.seq) {
					di := a.door
					m.remove(i, prev)
					out = m.open(di, ev.Src, now, out)
					i = next
					continue
				}
				m.unlinkStage(i)
				m.linkStage(i)
			case d.seq[a.stage-1] == k:
				// A repeat of the knock that just matched (a
				// retransmitted SYN, a second connection): ignore it.
				used = true
			default:
				failed = true
				m.remove(i, prev)
				i = next
				continue
			}
			prev, i = i, next
		}
	}
	if relevant && (used || !failed) {
		return out
	}
	for _, di := range m.first[keyOf(ev.Proto, ev.Port)] {
		d := &m.doors[di]
		if d.disabled || !targetOK(d.cfg, ev.Dst) {
			continue
		}
		if ev.Proto == config.TCP && !d.cfg.Flags.Match(ev.Flags) {
			continue
		}
		out = append(out, Action{Kind: Stage, Door: d.cfg, Src: ev.Src, Stage: 1, Time: now})
		if len(d.seq) == 1 {
			out = m.open(di, ev.Src, now, out)
			continue
		}
		m.add(di, ev.Src, now)
	}
	return out
}

func targetOK(d *config.Door, dst netip.Addr) bool {
	return !d.Target.IsValid() || d.Target == dst
}

// open reports an opening of door di, moving a one-time door on to its
// next sequence first, so that a used sequence is spent on disk before
// any command runs and can never match again.
func (m *Matcher) open(di int32, src netip.Addr, now time.Time, out []Action) []Action {
	d := &m.doors[di]
	cfg := d.cfg
	if cfg.OneTimeFile == "" {
		return append(out, Action{Kind: Open, Door: cfg, Src: src, Time: now})
	}
	next, off, err := m.opts.OneTime(cfg)
	var spent bool
	switch {
	case err == nil:
		nd := *cfg
		nd.Sequence, nd.OneTimeOffset = next, off
		d.cfg, d.seq = &nd, next
	case errors.Is(err, config.ErrNoSequence):
		// The used line was marked: the opening stands, then the door
		// closes for good.
		spent = true
	default:
		// The used line could not be marked, so it could be replayed
		// after a restart: refuse the opening and stop the door.
		d.disabled = true
		m.dropDoor(di)
		m.index()
		return append(out, Action{Kind: Disabled, Door: cfg, Time: now,
			Err: &disableError{fmt.Sprintf("error while disabling used one time sequence for door %s", cfg.Name), err}})
	}
	out = append(out, Action{Kind: Open, Door: cfg, Src: src, Time: now})
	// Attempts of other sources on this door were following the old
	// sequence: it is spent, so they end.
	m.dropDoor(di)
	if spent {
		d.disabled = true
		m.index()
		return append(out, Action{Kind: Disabled, Door: cfg, Time: now,
			Err: fmt.Errorf("no more sequences left in the one time sequences file for door %s", cfg.Name)})
	}
	m.index()
	return append(out, Action{Kind: NewSequence, Door: d.cfg, Time: now})
}

// dropDoor ends every attempt on door di.
func (m *Matcher) dropDoor(di int32) {
	for _, head := range m.bySrc {
		prev := int32(none)
		for i := head; i != none; {
			next := m.atts[i].srcNext
			if m.atts[i].door == di {
				m.removeFrom(m.atts[i].src, i, prev)
			} else {
				prev = i
			}
			i = next
		}
	}
}

// Expire ends the attempts whose Seq_Timeout has passed at now.
func (m *Matcher) Expire(now time.Time, out []Action) []Action {
	if now.After(m.now) {
		m.now = now
	}
	for g := range m.groups {
		gr := &m.groups[g]
		for gr.l.head != none {
			i := gr.l.head
			a := &m.atts[i]
			if now.Sub(a.start) < gr.timeout {
				break
			}
			out = append(out, Action{Kind: Timeout, Door: m.doors[a.door].cfg, Src: a.src, Stage: int(a.stage), Time: now})
			m.removeFrom(a.src, i, m.prevOfSrc(i))
		}
	}
	return out
}

// NextDeadline returns when the next attempt expires; ok is false when no
// attempt is in progress.
func (m *Matcher) NextDeadline() (t time.Time, ok bool) {
	for _, g := range m.groups {
		if g.l.head == none {
			continue
		}
		d := m.atts[g.l.head].start.Add(g.timeout)
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}

// add starts an attempt at stage 1.
func (m *Matcher) add(di int32, src netip.Addr, now time.Time) {
	if m.count >= m.max {
		// Make room from the least advanced, oldest attempt, but never
		// push out one further along than the newcomer.
		v := m.stages[1].head
		if v == none {
			m.refused++
			return
		}
		m.evicted++
		m.removeFrom(m.atts[v].src, v, m.prevOfSrc(v))
	}
	i := m.free
	if i != none {
		m.free = m.atts[i].srcNext
	} else {
		m.atts = append(m.atts, attempt{})
		i = int32(len(m.atts) - 1)
	}
	a := &m.atts[i]
	*a = attempt{src: src, start: now, door: di, stage: 1, srcNext: none}
	// Append to the source's chain so attempts keep door order.
	if head, ok := m.bySrc[keyOfSrc(src)]; ok {
		j := head
		for m.atts[j].srcNext != none {
			j = m.atts[j].srcNext
		}
		m.atts[j].srcNext = i
	} else {
		m.bySrc[keyOfSrc(src)] = i
	}
	m.push(&m.groups[m.doors[di].group].l, byTimeout, i)
	m.linkStage(i)
	m.count++
}

func (m *Matcher) prevOfSrc(i int32) int32 {
	prev := int32(none)
	for j := m.bySrc[keyOfSrc(m.atts[i].src)]; j != i && j != none; j = m.atts[j].srcNext {
		prev = j
	}
	return prev
}

func (m *Matcher) remove(i, prev int32) { m.removeFrom(m.atts[i].src, i, prev) }

// removeFrom unlinks attempt i (whose predecessor in src's chain is prev)
// from every list and frees it.
func (m *Matcher) removeFrom(src netip.Addr, i, prev int32) {
	a := &m.atts[i]
	if prev == none {
		if a.srcNext == none {
			delete(m.bySrc, keyOfSrc(src))
		} else {
			m.bySrc[keyOfSrc(src)] = a.srcNext
		}
	} else {
		m.atts[prev].srcNext = a.srcNext
	}
	m.unlink(&m.groups[m.doors[a.door].group].l, byTimeout, i)
	m.unlinkStage(i)
	*a = attempt{srcNext: m.free}
	m.free = i
	m.count--
}

func (m *Matcher) linkStage(i int32) {
	m.atts[i].lstage = m.atts[i].stage
	m.push(&m.stages[m.atts[i].stage], byStage, i)
}

// unlinkStage removes i from the stage list it is linked in.
func (m *Matcher) unlinkStage(i int32) {
	m.unlink(&m.stages[m.atts[i].lstage], byStage, i)
}

// push appends attempt i to list l, through its links number k.
func (m *Matcher) push(l *list, k int, i int32) {
	m.atts[i].link[k] = links{prev: l.tail, next: none}
	if l.tail != none {
		m.atts[l.tail].link[k].next = i
	} else {
		l.head = i
	}
	l.tail = i
}

// unlink removes attempt i from list l, through its links number k.
func (m *Matcher) unlink(l *list, k int, i int32) {
	ln := m.atts[i].link[k]
	if ln.prev != none {
		m.atts[ln.prev].link[k].next = ln.next
	} else {
		l.head = ln.next
	}
	if ln.next != none {
		m.atts[ln.next].link[k].prev = ln.prev
	} else {
		l.tail = ln.prev
	}
}

// String returns the action as knockd logs it, for example
// "192.0.2.7: openSSH: Stage 2".
func (a Action) String() string {
	switch a.Kind {
	case Stage:
		return fmt.Sprintf("%s: %s: Stage %d", a.Src, a.Door.Name, a.Stage)
	case Open:
		return fmt.Sprintf("%s: %s: OPEN SESAME", a.Src, a.Door.Name)
	case Timeout:
		return fmt.Sprintf("%s: %s: sequence timeout (stage %d)", a.Src, a.Door.Name, a.Stage)
	case Disabled:
		return fmt.Sprintf("%v --> disabling the door", a.Err)
	case NewSequence:
		return fmt.Sprintf("new sequence for door %s: %s", a.Door.Name, seqString(a.Door.Sequence))
	}
	return a.Kind.String()
}

func seqString(seq []config.Knock) string {
	b := make([]byte, 0, len(seq)*10)
	for i, k := range seq {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k.String()...)
	}
	return string(b)
}

// Package match turns knock events into door openings. One goroutine owns
// all state; time comes from the events and from timers, never from a
// wall clock read inside the matching code.
package match

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
	"unsafe"

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
	// Err is the reason when Kind == Disabled. When Kind == NewSequence,
	// it is nil, or says why the one-time file was read again from its
	// start (it was replaced or changed since it was read).
	Err error
}

// OneTimeFunc marks the sequence a one-time door just used as spent and
// returns the door's next sequence and where it was read in the file. It
// returns an error wrapping config.ErrNoSequence when none is left.
type OneTimeFunc func(d *config.Door) (next []config.Knock, at config.OneTimeLine, err error)

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
// The record holds no pointer (the garbage collector never scans the
// slice) and takes exactly one cache line.
type attempt struct {
	src   srcKey // the source address
	start int64  // when the attempt started, in ns since Matcher.epoch
	// link holds the attempt's places in two lists, oldest first: its
	// timeout group's (byTimeout) and, while it is at stage 1, its
	// family's stage-1 list (byStage), from which newcomers take room.
	link    [2]links
	srcNext int32 // next attempt of the same source, or the free list
	door    int32
	stage   int32    // knocks matched so far, 1..len(sequence)-1; 0 when free
	hash    uint32   // the source's hash in the table
	kind    addrKind // how to rebuild src as a netip.Addr
	_       [7]byte
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

// srcKey is a source address as the table's key: its 16 bytes (As16) as
// two integers, without the zone, which event sources never carry.
type srcKey struct{ hi, lo uint64 }

// family returns the index of an address kind's stage-1 list: 0 for
// IPv4, 1 for the others.
func family(k addrKind) int {
	if k == kind4 {
		return 0
	}
	return 1
}

// keyOfSrc returns a's key and kind.
//
// It avoids As16: the compiler copies the array it returns with one
// 16-byte load of two 8-byte stores, which the CPU cannot forward, so the
// load waits for the stores to retire, and with them every cache miss
// before it; that would serialise the loads HandleBatch means to overlap.
func keyOfSrc(a netip.Addr) (srcKey, addrKind) {
	if a.Is4() {
		b := a.As4()
		return srcKey{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))}, kind4
	}
	return keyOfSrc6(a)
}

// keyOfSrc6 is keyOfSrc for the other addresses. AppendBinary writes and
// reads back whole 8-byte words.
func keyOfSrc6(a netip.Addr) (srcKey, addrKind) {
	var buf [16]byte
	b, _ := a.WithZone("").AppendBinary(buf[:0])
	if len(b) != 16 {
		return srcKey{}, kindInvalid
	}
	return srcKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16])}, kind6
}

// addrKind tells apart the addresses that share a srcKey: an IPv4
// address and its IPv4-mapped IPv6 form, and the zero Addr and "::".
type addrKind uint8

const (
	kind6 addrKind = iota
	kind4
	kindInvalid
)

// addr rebuilds the address from its key and kind. A zone is lost, but
// event sources never report one.
func (k srcKey) addr(kind addrKind) netip.Addr {
	switch kind {
	case kind4:
		return netip.AddrFrom4([4]byte{byte(k.lo >> 24), byte(k.lo >> 16), byte(k.lo >> 8), byte(k.lo)})
	case kindInvalid:
		return netip.Addr{}
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.AddrFrom16(b)
}

type knockKey uint32

func keyOf(proto config.Proto, port uint16) knockKey {
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
	for _, p := range srcs {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

func (f *firstIndex) lookup(k knockKey) []int32 {
	if f.m != nil {
		return f.m[k]
	}
	for i, kk := range f.keys {
		if kk == k {
			return f.doors[i]
		}
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
	opts   Options
	max    int
	doors  []door
	first  firstIndex
	gate   gateIndex
	groups []group
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
	m.tab = newTable(m.max)
	m.atts = newAttempts(m.max)
	m.setDoors(doors)
	return m
}

// maxUpfrontAttempts caps the attempts allocated up front (64 MiB); a
// larger cap is reached by doubling.
const maxUpfrontAttempts = 1 << 20

// newAttempts returns an empty slice of attempts for a cap of max. Up to
// maxUpfrontAttempts it has room for them all, so that a flood filling
// the cap never copies the attempts to a larger slice (a stall while
// packets arrive) nor leaves the old ones as garbage (peak memory). The
// memory is fresh from the system, and the slice holds no pointers: the
// pages are touched only as attempts fill them.
func newAttempts(max int) []attempt {
	if max > maxUpfrontAttempts {
		return nil
	}
	return make([]attempt, 0, max)
}

// capFor returns the cap on attempts for MaxAttempts n.
func capFor(n int) int {
	if n <= 0 {
		return DefaultMaxAttempts
	}
	return min(n, maxAttemptsLimit)
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
	f := firstIndex{}
	for i, d := range m.doors {
		if d.disabled {
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
	return Stats{InProgress: m.count, Evicted: m.evicted, Refused: m.refused, MaxAttempts: m.max,
		Bytes: cap(m.atts)*int(unsafe.Sizeof(attempt{})) + cap(m.tab.slots)*int(unsafe.Sizeof(slot{}))}
}

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

// appendAction appends an action to out. It sets the fields one by one:
// a composite literal would be built on the stack and copied in 16-byte
// words, a load the CPU cannot forward from the smaller stores that built
// it, which would stall until they retire, cache misses before them
// included.
func appendAction(out []Action, kind Kind, door *config.Door, src netip.Addr, stage int, t time.Time, err error) []Action {
	n := len(out)
	if n < cap(out) {
		out = out[:n+1]
	} else {
		out = append(out, Action{})
	}
	a := &out[n]
	a.Kind = kind
	a.Door = door
	a.Src = src
	a.Stage = stage
	a.Time = t
	a.Err = err
	return out
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
		if ev.Proto == config.TCP && !d.cfg.Flags.Match(ev.Flags) {
			continue
		}
		out = appendAction(out, Stage, d.cfg, ev.Src, 1, now, nil)
		if len(d.seq) == 1 {
			out = m.open(di, ev.Src, now, out)
			continue
		}
		if m.add(di, k, kind, h, nowOff, known) != none {
			known = true
		}
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
	next, at, err := m.opts.OneTime(cfg)
	var spent bool
	var spentErr error
	switch {
	case err == nil && len(next) > 0:
		nd := *cfg
		nd.Sequence, nd.OneTimeOffset, nd.OneTimeText, nd.OneTimeInfo = next, at.Off, at.Text, at.Info
		d.cfg, d.seq = &nd, next
	case err == nil:
		// No knock in the next sequence: nothing can open the door.
		spent = true
	case errors.Is(err, config.ErrNoSequence):
		// The used line was marked: the opening stands, then the door
		// closes for good.
		spent = true
	case errors.Is(err, config.ErrBadLine):
		// The used line was marked (or its file is gone), but the next
		// one is not a sequence: the opening stands, and the door waits
		// until the file is fixed and the configuration re-read.
		spent = true
		spentErr = &disableError{fmt.Sprintf("the next one time sequence for door %s is not a sequence", cfg.Name), err}
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
		if spentErr == nil {
			spentErr = fmt.Errorf("no more sequences left in the one time sequences file for door %s", cfg.Name)
		}
		return append(out, Action{Kind: Disabled, Door: cfg, Time: now, Err: spentErr})
	}
	m.index()
	var reread error
	if at.Reread != "" {
		reread = fmt.Errorf("%s: %s, so the used sequence was not marked in it; the door goes on with its line %d", cfg.OneTimeFile, at.Reread, at.Num)
	}
	return append(out, Action{Kind: NewSequence, Door: d.cfg, Time: now, Err: reread})
}

// dropDoor ends every attempt on door di.
func (m *Matcher) dropDoor(di int32) {
	for i := range m.atts {
		if a := &m.atts[i]; a.stage != 0 && a.door == di {
			m.removeAttempt(int32(i))
		}
	}
}

// Expire ends the attempts whose Seq_Timeout has passed at now.
func (m *Matcher) Expire(now time.Time, out []Action) []Action {
	nowOff := m.offset(now)
	if now.After(m.now) {
		m.now, m.nowOff = now, nowOff
	}
	return m.expire(now, nowOff, out)
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

// NextDeadline returns when the next attempt expires; ok is false when no
// attempt is in progress.
func (m *Matcher) NextDeadline() (t time.Time, ok bool) {
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

// add starts an attempt at stage 1 for the source with key k and hash h,
// and returns its index, or none if the state is full of further advanced
// attempts.
//
// known is false if the source is known not to be in the table; true
// means that it may be.
func (m *Matcher) add(di int32, k srcKey, kind addrKind, h uint32, start int64, known bool) int32 {
	var i int32
	switch {
	case m.count >= m.max:
		// Make room from the oldest attempt at stage 1, of the family
		// that holds more of them; never push out one further along
		// than the newcomer.
		i = m.stage1[m.victimFamily(family(kind))].head
		if i == none {
			m.refused++
			return none
		}
		m.evicted++
		// Its record is reused at once, as freeing it then taking the
		// head of the free list would.
		m.unchainAttempt(i)
		m.unlinkAttempt(i)
	case m.free != none:
		i = m.free
		m.free = m.atts[i].srcNext
		m.count++
	default:
		if len(m.atts) == cap(m.atts) {
			// Grow by doubling, but never past the cap on attempts.
			n := min(max(2*cap(m.atts), 64), m.max)
			m.atts = append(make([]attempt, 0, max(n, len(m.atts)+1)), m.atts...)
		}
		m.atts = append(m.atts, attempt{})
		i = int32(len(m.atts) - 1)
		m.count++
	}
	a := &m.atts[i]
	a.src = k
	a.start = start
	a.srcNext = none
	a.door = di
	a.stage = 1
	a.hash = h
	a.kind = kind
	// Append to the source's chain so attempts keep door order.
	if !known {
		// Making room only took entries out.
		m.tab.insert(m.tab.free(h), h, i)
	} else if pos, ok := m.tab.find(k, h, m.atts); ok {
		j := m.tab.head(pos)
		for m.atts[j].srcNext != none {
			j = m.atts[j].srcNext
		}
		m.atts[j].srcNext = i
	} else {
		m.tab.insert(pos, h, i)
	}
	m.push(&m.groups[m.doors[di].group].l, byTimeout, i)
	m.linkStage(i)
	return i
}

// victimFamily returns the family whose oldest stage-1 attempt makes room
// for a newcomer of family f: the one with more of them, f on a tie.
func (m *Matcher) victimFamily(f int) int {
	if m.n1[1-f] > m.n1[f] {
		return 1 - f
	}
	return f
}

// removeAttempt ends attempt i.
func (m *Matcher) removeAttempt(i int32) {
	m.unchainAttempt(i)
	m.release(i)
}

// unchainAttempt takes attempt i off its source's chain, and the source
// off the table if i was its last attempt.
func (m *Matcher) unchainAttempt(i int32) {
	a := &m.atts[i]
	if pos, ok := m.tab.findHead(a.hash, i); ok {
		m.unchain(pos, i)
		return
	}
	pos, _ := m.tab.find(a.src, a.hash, m.atts)
	j := m.tab.head(pos)
	for m.atts[j].srcNext != i {
		j = m.atts[j].srcNext
	}
	m.atts[j].srcNext = a.srcNext
}

// removeFrom ends attempt i, whose predecessor in its source's chain is
// prev.
func (m *Matcher) removeFrom(i, prev int32) {
	a := &m.atts[i]
	if prev == none {
		pos, _ := m.tab.find(a.src, a.hash, m.atts)
		m.unchain(pos, i)
	} else {
		m.atts[prev].srcNext = a.srcNext
	}
	m.release(i)
}

// unchain takes attempt i, the head of the chain at table position pos,
// off the chain, and the source off the table if i was its last attempt.
func (m *Matcher) unchain(pos uint32, i int32) {
	if next := m.atts[i].srcNext; next != none {
		m.tab.setHead(pos, next)
	} else {
		m.tab.delete(pos)
	}
}

// unlinkAttempt unlinks attempt i from its timeout list, and from its
// stage-1 list if it is at stage 1.
func (m *Matcher) unlinkAttempt(i int32) {
	m.unlink(&m.groups[m.doors[m.atts[i].door].group].l, byTimeout, i)
	if m.atts[i].stage == 1 {
		m.unlinkStage(i)
	}
}

// release unlinks attempt i, already off its chain, from its lists and
// frees it.
func (m *Matcher) release(i int32) {
	m.unlinkAttempt(i)
	a := &m.atts[i]
	*a = attempt{}
	a.srcNext = m.free
	m.free = i
	m.count--
}

// linkStage appends attempt i, at stage 1, to its family's stage-1 list.
func (m *Matcher) linkStage(i int32) {
	f := family(m.atts[i].kind)
	m.push(&m.stage1[f], byStage, i)
	m.n1[f]++
}

// unlinkStage removes attempt i from its family's stage-1 list.
func (m *Matcher) unlinkStage(i int32) {
	f := family(m.atts[i].kind)
	m.unlink(&m.stage1[f], byStage, i)
	m.n1[f]--
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

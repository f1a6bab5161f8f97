package match

import (
	"net/netip"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// none is the index of no attempt, the end of every list.
const none = -1

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

// victim is an evicted attempt, for its Ended action.
type victim struct {
	door  *config.Door
	src   netip.Addr
	stage int
}

// Indexes into attempt.link.
const (
	byTimeout = 0
	byStage   = 1
)

type list struct{ head, tail int32 }

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

// dropDoor ends every attempt on door di, whose configuration was cfg,
// and with Explain says so in out.
func (m *Matcher) dropDoor(di int32, cfg *config.Door, now time.Time, out []Action) []Action {
	for i := range m.atts {
		if a := &m.atts[i]; a.stage != 0 && a.door == di {
			if m.opts.Explain {
				out = appendWhy(out, Ended, Spent, cfg, a.src.addr(a.kind), int(a.stage), wire.Knock{}, 0, now)
			}
			m.removeAttempt(int32(i))
		}
	}
	return out
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
		if m.opts.Explain {
			v := &m.atts[i]
			m.victim = victim{door: m.doors[v.door].cfg, src: v.src.addr(v.kind), stage: int(v.stage)}
			m.hasVictim = true
		}
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

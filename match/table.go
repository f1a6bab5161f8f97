package match

import (
	"math/bits"
	"math/rand/v2"
)

// table maps a source address to the head of its chain of attempts. It is
// an open-addressing hash table with linear probing and backward-shift
// deletion (no tombstones), at a load factor of at most 1/loadDiv.
//
// A slot holds the low 32 bits of its key's hash and the chain head, in 8
// bytes, eight to a cache line; the key itself is in the head attempt,
// which every lookup that finds its key reads anyway. A lookup reads one
// line of slots (a probe sequence is short, and rarely crosses a line),
// then the attempt of each slot whose hash matches: with 32 bits of hash,
// almost only the one sought. Slots this small keep the table a quarter of
// the size it would be with keys inline, so much more of it stays in the
// caches and the TLB; and a lookup of a new source, as in a flood, reads
// no attempt at all.
//
// The hash is seeded per table, so that a spoofing attacker cannot choose
// sources that collide. The methods take the key's hash from the caller
// (see hash), so that a batch can hash its events ahead of processing.
type table struct {
	slots []slot
	mask  uint32 // len(slots)-1; len(slots) is a power of two
	n     int    // entries in use
	grow  int    // n above which the table doubles
	max   int    // the size, in slots, the table may grow to
	seed  [4]uint64
}

// slot is one entry: the chain head's index plus one, 0 marking a free
// slot, and the hash of the key, which tells the entry's home slot
// (hash&mask) and tells most other keys apart without reading the key.
type slot struct {
	hash uint32
	idx  uint32
}

const (
	// loadDiv is the inverse of the greatest load factor. At 1/4 probe
	// sequences and the runs that deletion shifts back are short, and
	// the table, at 8 bytes a slot, is still half the size of the
	// attempts; measured, 1/4 was faster than 1/2 and 1/8 in a flood
	// and at a million sources.
	loadDiv      = 4
	minTableSize = 16
	// maxUpfront caps the table allocated up front (4 Mi slots, 32 MiB,
	// enough for a million sources); beyond it the table doubles as it
	// fills.
	maxUpfront = 1 << 22
	// maxTableSize keeps slot indexes within 32 bits, and the load factor
	// at most 1/loadDiv with maxAttemptsLimit sources.
	maxTableSize = loadDiv * maxAttemptsLimit
)

// newTable returns a table for up to entries keys. It allocates the full
// size up front unless that is very large, so that it never rehashes on
// the hot path.
func newTable(entries int) table {
	want := tableSizeFor(entries)
	t := table{max: want}
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	t.seed[3] |= 1
	t.alloc(min(want, maxUpfront))
	return t
}

// tableSizeFor returns the size of a table for entries keys at a load
// factor of at most 1/loadDiv.
func tableSizeFor(entries int) int {
	size := minTableSize
	for size < maxTableSize && size/loadDiv < entries {
		size <<= 1
	}
	return size
}

func (t *table) alloc(size int) {
	t.slots = make([]slot, size)
	t.mask = uint32(size - 1)
	t.grow = size / loadDiv
	t.n = 0
}

// hash returns the table's hash of key k: a folded 64×64→128-bit multiply,
// as in wyhash, keyed by the table's random seed.
func (t *table) hash(k srcKey) uint32 {
	h := mix(k.hi^t.seed[0], k.lo^t.seed[1])
	return uint32(mix(h^t.seed[2], t.seed[3]))
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// find returns the position of key k, whose hash is h, and whether it is
// there; if not, pos is where it would be inserted. atts holds the chain
// heads, and so the keys.
func (t *table) find(k srcKey, h uint32, atts []attempt) (pos uint32, ok bool) {
	slots, mask := t.slots, t.mask
	for i := h & mask; ; i = (i + 1) & mask {
		s := slots[i]
		if s.idx == 0 {
			return i, false
		}
		if s.hash == h && s.idx <= uint32(len(atts)) && atts[s.idx-1].src == k {
			return i, true
		}
	}
}

// findHead returns the position of the entry whose key's hash is h and
// whose chain head is i, and whether there is one. It needs no key.
func (t *table) findHead(h uint32, i int32) (pos uint32, ok bool) {
	slots, mask, idx := t.slots, t.mask, uint32(i)+1
	for j := h & mask; ; j = (j + 1) & mask {
		s := slots[j]
		if s.idx == idx {
			return j, true
		}
		if s.idx == 0 {
			return j, false
		}
	}
}

// head returns the chain head of the entry at pos.
func (t *table) head(pos uint32) int32 { return int32(t.slots[pos].idx) - 1 }

// setHead sets the chain head of the entry at pos.
func (t *table) setHead(pos uint32, head int32) { t.slots[pos].idx = uint32(head) + 1 }

// insert adds the key whose hash is h, with chain head head, at pos, as
// returned by a find that failed with no change to the table since.
func (t *table) insert(pos uint32, h uint32, head int32) {
	if t.n >= t.grow && len(t.slots) < t.max {
		t.resize(len(t.slots) * 2)
		pos = t.free(h)
	}
	t.slots[pos] = slot{hash: h, idx: uint32(head) + 1}
	t.n++
}

// free returns the first free slot from the home of hash h.
func (t *table) free(h uint32) uint32 {
	i := h & t.mask
	for t.slots[i].idx != 0 {
		i = (i + 1) & t.mask
	}
	return i
}

func (t *table) resize(size int) {
	old := t.slots
	t.alloc(size)
	for _, s := range old {
		if s.idx != 0 {
			t.slots[t.free(s.hash)] = s
			t.n++
		}
	}
}

// delete removes the entry at pos, shifting back the entries after it
// that would otherwise become unreachable (Knuth's algorithm R).
func (t *table) delete(pos uint32) {
	slots, mask := t.slots, t.mask
	j := pos // the hole
	for k := (pos + 1) & mask; ; k = (k + 1) & mask {
		s := slots[k]
		if s.idx == 0 {
			break
		}
		// The entry at k moves into the hole unless its home slot lies
		// cyclically in (j, k].
		if (k-s.hash)&mask >= (k-j)&mask {
			slots[j] = s
			j = k
		}
	}
	slots[j] = slot{}
	t.n--
}

// clear empties the table, keeping its size.
func (t *table) clear() {
	clear(t.slots)
	t.n = 0
}

package match

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// check verifies the table's shape and count, and that no entry is cut
// off from its home slot by a free slot. The matcher's check verifies the
// entries against their keys.
func (t *table) check() error {
	if len(t.slots) == 0 || len(t.slots)&(len(t.slots)-1) != 0 || t.mask != uint32(len(t.slots)-1) {
		return fmt.Errorf("table of %d slots, mask %#x", len(t.slots), t.mask)
	}
	n := 0
	for p, s := range t.slots {
		if s.idx == 0 {
			if s != (slot{}) {
				return fmt.Errorf("free slot %d not zero: %+v", p, s)
			}
			continue
		}
		n++
		for i := s.hash & t.mask; i != uint32(p); i = (i + 1) & t.mask {
			if t.slots[i].idx == 0 {
				return fmt.Errorf("slot %d (home %d): free slot %d on the way", p, s.hash&t.mask, i)
			}
		}
	}
	if n != t.n {
		return fmt.Errorf("%d entries, n = %d", n, t.n)
	}
	if t.n > len(t.slots)/loadDiv {
		return fmt.Errorf("%d entries in %d slots", t.n, len(t.slots))
	}
	return nil
}

func TestRecordSizes(t *testing.T) {
	if s := unsafe.Sizeof(attempt{}); s != 64 {
		t.Errorf("attempt is %d bytes, want 64 (one cache line)", s)
	}
	if s := unsafe.Sizeof(slot{}); s != 8 {
		t.Errorf("slot is %d bytes, want 8", s)
	}
}

// TestTableAgainstMap runs random inserts, updates and deletes on a small
// table and on a Go map. The keys live in a slice of attempts, as in the
// matcher. Some runs draw hashes from a few values, so that keys collide
// (same hash, different key), cluster and wrap around the end of the
// table.
func TestTableAgainstMap(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries int
		hashes  uint32 // 0: the real hash
		keys    uint64
	}{
		{"real hash", 40, 0, 200},
		{"three hashes", 30, 3, 100},
		{"clustered at the end", 8, 2, 50},
		{"growing", 1000, 0, 3000},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(c.entries)))
			tb := newTable(c.entries)
			if c.name == "growing" {
				// Start small and let the table double.
				tb.alloc(minTableSize)
			}
			hashOf := func(k srcKey) uint32 {
				if c.hashes == 0 {
					return tb.hash(k)
				}
				// Homes at the end of the table, so that probes wrap.
				return ^uint32(k.lo % uint64(c.hashes))
			}
			// Each key k has its attempt at k.lo (keys are distinct in
			// lo), which the entries point to.
			atts := make([]attempt, c.keys)
			for i := range atts {
				atts[i].src = srcKey{uint64(i) % 3, uint64(i)}
			}
			ref := map[srcKey]int32{}
			for op := 0; op < 200_000; op++ {
				k := atts[r.Uint64N(c.keys)].src
				h := hashOf(k)
				pos, ok := tb.find(k, h, atts)
				v, want := ref[k]
				if ok != want || ok && tb.head(pos) != v {
					t.Fatalf("op %d: find %v = %d, %v; map has %d, %v", op, k, tb.head(pos), ok, v, want)
				}
				switch {
				case ok && r.IntN(3) == 0:
					// Another attempt of the same key becomes the head:
					// none here, so keep the head but rewrite it.
					tb.setHead(pos, v)
				case ok:
					tb.delete(pos)
					delete(ref, k)
				case len(ref) < c.entries:
					tb.insert(pos, h, int32(k.lo))
					ref[k] = int32(k.lo)
				}
				if tb.n != len(ref) {
					t.Fatalf("op %d: %d entries, map has %d", op, tb.n, len(ref))
				}
				if op%997 == 0 || op < 2000 {
					if err := tb.check(); err != nil {
						t.Fatalf("op %d: %v", op, err)
					}
				}
			}
			for k, v := range ref {
				pos, ok := tb.find(k, hashOf(k), atts)
				if !ok || tb.head(pos) != v {
					t.Fatalf("end: %v missing", k)
				}
			}
			if err := tb.check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzTable drives the table with operations read from the input, against
// a Go map.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0x81, 0x82, 0x41, 0x42})
	f.Add([]byte{0xff, 0xfe, 0x7f, 0x7e, 0x3f, 0x00, 0x80, 0xc0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		tb := newTable(4) // 16 slots
		atts := make([]attempt, 64)
		for i := range atts {
			atts[i].src = srcKey{0, uint64(i)}
		}
		ref := map[srcKey]bool{}
		if len(ops) == 0 {
			return
		}
		// The first byte picks how keys hash: spread out, or into a few
		// slots, so that probes cluster and wrap.
		shape := ops[0]
		for _, op := range ops[1:] {
			k := atts[op&63].src
			h := uint32(k.lo) * 0x9e3779b1
			switch shape % 4 {
			case 1:
				h = uint32(k.lo) % uint32(1+shape>>2) // collisions
			case 2:
				h = ^uint32(k.lo % 3) // homes at the end
			case 3:
				h = uint32(k.lo)
			}
			if op&0x40 != 0 {
				// A lookup only.
				if _, ok := tb.find(k, h, atts); ok != ref[k] {
					t.Fatalf("find %v = %v, map has %v", k, ok, ref[k])
				}
				continue
			}
			pos, ok := tb.find(k, h, atts)
			if ok != ref[k] {
				t.Fatalf("find %v = %v, map has %v", k, ok, ref[k])
			}
			switch {
			case ok:
				tb.delete(pos)
				delete(ref, k)
			case len(ref) < 4:
				tb.insert(pos, h, int32(k.lo))
				ref[k] = true
			}
			if err := tb.check(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestTableSizes(t *testing.T) {
	for _, c := range []struct{ entries, size int }{
		{1, 16}, {4, 16}, {5, 32}, {100_000, 1 << 19}, {DefaultMaxAttempts, 4 * DefaultMaxAttempts}, {1_000_000, 1 << 22},
	} {
		if got := tableSizeFor(c.entries); got != c.size {
			t.Errorf("tableSizeFor(%d) = %d, want %d", c.entries, got, c.size)
		}
	}
	if got := tableSizeFor(maxAttemptsLimit); got != maxTableSize {
		t.Errorf("tableSizeFor(%d) = %d, want %d", maxAttemptsLimit, got, maxTableSize)
	}
}

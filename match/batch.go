package match

import "github.com/knock-go/knock/capture"

// batchChunk is how many events HandleBatch warms the caches for at a
// time: enough for the CPU to overlap many cache misses, few enough that
// the lines stay in the L1 cache until processed. Measured, 32 to 256
// did about as well.
const batchChunk = 128

// HandleBatch processes evs in order and appends the resulting actions to
// out, exactly as calling Handle for each event in turn would.
//
// With many sources in progress nearly every event's table slot is a
// cache (and TLB) miss, and one miss at a time would cost more than all
// the rest of the work. So HandleBatch works through evs a chunk at a
// time: it hashes the chunk's sources, then loads the table slots they
// will need (see warm) in a loop where no load waits for another, so
// that the CPU overlaps their misses; then it processes the chunk's
// events one by one, as Handle does, on warm caches. The warming loads
// only read: they change nothing, whatever processing then does to the
// state, and a wrong guess only costs time.
func (m *Matcher) HandleBatch(evs []capture.Event, out []Action) []Action {
	var keys [batchChunk]srcKey
	var kinds [batchChunk]addrKind
	var hs [batchChunk]uint32
	for len(evs) > 0 {
		c := evs[:min(len(evs), batchChunk)]
		evs = evs[len(c):]
		for i := range c {
			k, kind := keyOfSrc(c[i].Src)
			keys[i], kinds[i], hs[i] = k, kind, m.tab.hash(k)
		}
		m.warm(keys[:len(c)], hs[:len(c)])
		for i := range c {
			out = m.handle(&c[i], keys[i], kinds[i], hs[i], out)
		}
	}
	return out
}

// warm loads what processing the events with keys and hashes hs will
// read; see HandleBatch.
func (m *Matcher) warm(keys []srcKey, hs []uint32) {
	slots, mask := m.tab.slots, m.tab.mask
	if len(slots) == 0 {
		return
	}
	hs = hs[:len(keys)]
	// A tight loop of independent loads, so that as many as the CPU can
	// track are in flight at once: the sources' home slots. Nothing else
	// in the loop waits for the loads, so that the instructions waiting
	// do not fill the CPU's queues.
	var sink uint32
	for _, h := range hs {
		sink += slots[h&mask].idx
	}
	// The attempts the slots lead to are not loaded ahead: measured,
	// that costs more than it saves, as processing an event overlaps the
	// miss on its attempt with the work on the events around it.
	//
	// In a flood, each new source that starts an attempt makes the next
	// attempt in line give way, whose source's slot is then looked up:
	// load those too, when the last chunk evicted, for the sources taken
	// as new, whose home slot holds another hash (most often none). The
	// line of stage 1 attempts (of the family that gives way, as the
	// flood's own) is a linked list, but following it would
	// make each load wait for the one before; in a flood it runs in the
	// order of the records (each evicted record is reused at once for
	// the newcomer at the end of the line), so take the records after
	// its head, without a wait.
	if atts := m.atts; m.evicted != m.warmEvicted && len(atts) > 0 {
		m.warmEvicted = m.evicted
		fresh := 0
		for _, h := range hs {
			if slots[h&mask].hash != h {
				fresh++
			}
		}
		if v := int(m.stage1[m.victimFamily(0)].head); v >= 0 {
			for range min(fresh, len(atts)) {
				if v >= len(atts) {
					v = 0
				}
				sink += slots[atts[v].hash&mask].idx
				v++
			}
		}
	}
	m.sink += sink
}

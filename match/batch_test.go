package match

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// randomDoors returns a random configuration of one to four doors on a
// few ports, so that sequences overlap: shared first knocks, targets,
// TCP flags, several timeouts, one-knock doors, one-time doors and doors
// limited to some sources.
func randomDoors(r *rand.Rand) []*config.Door {
	var doors []*config.Door
	for i := range 1 + r.IntN(4) {
		d := &config.Door{
			Name:       fmt.Sprintf("door%d", i),
			SeqTimeout: time.Duration(1+r.IntN(3)) * time.Second,
		}
		d.Sequence = randomSeq(r)
		if r.IntN(4) == 0 {
			d.Target = netip.MustParseAddr("203.0.113.9")
		}
		if r.IntN(4) == 0 {
			d.Flags = wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}
		}
		if r.IntN(5) == 0 {
			d.OneTimeFile = d.Name + ".seq"
		}
		if r.IntN(4) == 0 {
			d.Sources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/30"), netip.MustParsePrefix("2001:db8::2/128")}
		}
		doors = append(doors, d)
	}
	return doors
}

func randomSeq(r *rand.Rand) []wire.Knock {
	n := 1 + r.IntN(4)
	if r.IntN(8) == 0 {
		n = config.MaxSequence
	}
	s := make([]wire.Knock, n)
	for i := range s {
		s[i] = randomKnock(r)
	}
	return s
}

func randomKnock(r *rand.Rand) wire.Knock {
	k := wire.Knock{Port: uint16(7000 + r.IntN(3)), Proto: wire.TCP}
	if r.IntN(4) == 0 {
		k.Proto = wire.UDP
	}
	return k
}

var randomSrcs = []netip.Addr{
	netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"),
	netip.MustParseAddr("198.51.100.3"), netip.MustParseAddr("198.51.100.4"),
	netip.MustParseAddr("198.51.100.5"), netip.MustParseAddr("2001:db8::1"),
	netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("::"),
}

// randomEvents returns n events from a few sources on the doors' ports,
// mostly in time order but sometimes going back, with gaps that let
// attempts time out.
func randomEvents(r *rand.Rand, doors []*config.Door, at *time.Duration, n int) []capture.Event {
	evs := make([]capture.Event, n)
	for i := range evs {
		switch r.IntN(20) {
		case 0:
			*at += time.Duration(r.IntN(3000)) * time.Millisecond
		case 1:
			*at -= time.Duration(r.IntN(500)) * time.Millisecond
		default:
			*at += time.Duration(r.IntN(100)) * time.Millisecond
		}
		ev := capture.Event{Time: t0.Add(*at), Src: randomSrcs[r.IntN(len(randomSrcs))], Dst: netip.MustParseAddr("203.0.113.1")}
		if r.IntN(4) == 0 {
			ev.Dst = netip.MustParseAddr("203.0.113.9")
		}
		var k wire.Knock
		if d := doors[r.IntN(len(doors))]; r.IntN(6) != 0 && len(d.Sequence) > 0 {
			// Mostly a knock of some door's sequence, so that
			// attempts advance and open.
			k = d.Sequence[r.IntN(min(len(d.Sequence), 3))]
		} else {
			k = randomKnock(r)
		}
		ev.Port, ev.Proto = k.Port, k.Proto
		if k.Proto == wire.TCP {
			ev.Flags = [...]uint8{wire.SYN, wire.SYN, wire.SYN | wire.ACK, wire.ACK}[r.IntN(4)]
		}
		evs[i] = ev
	}
	return evs
}

// scriptedOneTime hands out pseudo-random sequences, the same for each
// matcher built from the same seed, and sometimes fails.
type scriptedOneTime struct{ r *rand.Rand }

func (s *scriptedOneTime) use(d *config.Door) ([]wire.Knock, config.OneTimeLine, error) {
	next := config.OneTimeLine{Off: d.OneTimeOffset + 1}
	switch s.r.IntN(10) {
	case 0:
		return nil, config.OneTimeLine{}, fmt.Errorf("%s: %w", d.OneTimeFile, config.ErrNoSequence)
	case 1:
		return nil, config.OneTimeLine{}, fmt.Errorf("disk full")
	case 2:
		return nil, next, nil // an empty sequence
	}
	return randomSeq(s.r), next, nil
}

func actionStrings(acts []Action) []string {
	s := make([]string, len(acts))
	for i, a := range acts {
		s[i] = fmt.Sprintf("%v at %v (src %v/%d)", a, a.Time.Sub(t0), a.Src, a.Src.BitLen())
	}
	return s
}

func sameAction(a, b Action) bool {
	if a.Kind != b.Kind || a.Src != b.Src || a.Stage != b.Stage || !a.Time.Equal(b.Time) || (a.Err == nil) != (b.Err == nil) {
		return false
	}
	if (a.Door == nil) != (b.Door == nil) || a.Door != nil && (a.Door.Name != b.Door.Name || !slices.Equal(a.Door.Sequence, b.Door.Sequence)) {
		return false
	}
	return a.Err == nil || a.Err.Error() == b.Err.Error()
}

// sameActions returns "" if a and b are the same, or where they differ.
func sameActions(a, b []Action) string {
	if len(a) == len(b) {
		same := true
		for i := range a {
			if !sameAction(a[i], b[i]) {
				same = false
				break
			}
		}
		if same {
			return ""
		}
	}
	as, bs := actionStrings(a), actionStrings(b)
	for i := range min(len(as), len(bs)) {
		if as[i] != bs[i] {
			return fmt.Sprintf("action %d: %q, then %q", i, as[i], bs[i])
		}
	}
	if len(as) != len(bs) {
		return fmt.Sprintf("%d actions, then %d", len(as), len(bs))
	}
	return ""
}

// TestHandleBatchIsHandle checks on random event streams that HandleBatch
// does exactly what Handle does event by event: same actions in the same
// order, same counters, consistent state throughout. Streams cover several
// doors, one-time doors, eviction at a small cap, timeouts, reloads and
// changes of the cap.
func TestHandleBatchIsHandle(t *testing.T) {
	iters := 400
	if testing.Short() {
		iters = 50
	}
	for iter := range iters {
		seed := uint64(iter)
		r := rand.New(rand.NewPCG(seed, 1))
		doors := randomDoors(r)
		max := 1 + r.IntN(12)
		if r.IntN(4) == 0 {
			max = 1000 // never reached
		}
		one := New(doors, Options{MaxAttempts: max, OneTime: (&scriptedOneTime{rand.New(rand.NewPCG(seed, 2))}).use})
		batch := New(doors, Options{MaxAttempts: max, OneTime: (&scriptedOneTime{rand.New(rand.NewPCG(seed, 2))}).use})
		var at time.Duration
		var outOne, outBatch []Action
		for round := range 60 {
			evs := randomEvents(r, doors, &at, r.IntN(2*batchChunk+3))
			outOne = outOne[:0]
			for i, ev := range evs {
				outOne = one.Handle(ev, outOne)
				if i%5 != 0 {
					continue
				}
				if err := one.check(); err != nil {
					t.Fatalf("seed %d round %d: Handle of event %d %+v: %v", seed, round, i, ev, err)
				}
			}
			outBatch = batch.HandleBatch(evs, outBatch[:0])
			if err := batch.check(); err != nil {
				t.Fatalf("seed %d round %d: HandleBatch: %v", seed, round, err)
			}
			if d := sameActions(outOne, outBatch); d != "" {
				t.Fatalf("seed %d round %d: Handle then HandleBatch: %s", seed, round, d)
			}
			if one.Stats() != batch.Stats() {
				t.Fatalf("seed %d round %d: stats %+v and %+v", seed, round, one.Stats(), batch.Stats())
			}
			switch r.IntN(10) {
			case 0:
				at += time.Duration(r.IntN(4000)) * time.Millisecond
				if d := sameActions(one.Expire(t0.Add(at), nil), batch.Expire(t0.Add(at), nil)); d != "" {
					t.Fatalf("seed %d round %d: Expire: %s", seed, round, d)
				}
			case 1:
				// Reload with some doors kept and some changed.
				nd := randomDoors(r)
				for i := range nd {
					if i < len(doors) && r.IntN(2) == 0 {
						nd[i] = doors[i]
					}
				}
				doors = nd
				one.Reload(doors)
				batch.Reload(doors)
			case 2:
				n := 1 + r.IntN(12)
				one.SetMaxAttempts(n)
				batch.SetMaxAttempts(n)
			}
			d1, ok1 := one.NextDeadline()
			d2, ok2 := batch.NextDeadline()
			if ok1 != ok2 || !d1.Equal(d2) {
				t.Fatalf("seed %d round %d: next deadline %v, %v and %v, %v", seed, round, d1, ok1, d2, ok2)
			}
			for _, m := range []*Matcher{one, batch} {
				if err := m.check(); err != nil {
					t.Fatalf("seed %d round %d: %v", seed, round, err)
				}
			}
		}
	}
}

// TestHandleBatchFlood checks HandleBatch against Handle on a flood of
// new sources at a small cap, every event evicting, with now and then a
// source that knocks on.
func TestHandleBatchFlood(t *testing.T) {
	d := mkDoor("d", "7000,8000,9000", 3600)
	one := New([]*config.Door{d}, Options{MaxAttempts: 50})
	batch := New([]*config.Door{d}, Options{MaxAttempts: 50})
	r := rand.New(rand.NewPCG(7, 7))
	ev := capture.Event{Time: t0, Dst: netip.MustParseAddr("203.0.113.1"), Proto: wire.TCP, Flags: wire.SYN}
	var outOne, outBatch []Action
	n := 0
	for round := range 200 {
		evs := make([]capture.Event, r.IntN(300))
		for i := range evs {
			ev.Src = netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
			ev.Port = 7000
			if r.IntN(10) == 0 && n > 10 {
				// A recent source knocks on.
				m := n - 1 - r.IntN(10)
				ev.Src = netip.AddrFrom4([4]byte{10, byte(m >> 16), byte(m >> 8), byte(m)})
				ev.Port = 8000
			}
			n++
			evs[i] = ev
		}
		outOne = outOne[:0]
		for _, ev := range evs {
			outOne = one.Handle(ev, outOne)
		}
		outBatch = batch.HandleBatch(evs, outBatch[:0])
		if d := sameActions(outOne, outBatch); d != "" {
			t.Fatalf("round %d: Handle then HandleBatch: %s", round, d)
		}
		for _, m := range []*Matcher{one, batch} {
			if err := m.check(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if one.Stats() != batch.Stats() {
			t.Fatalf("round %d: stats %+v and %+v", round, one.Stats(), batch.Stats())
		}
	}
	if st := batch.Stats(); st.Evicted == 0 || st.InProgress != 50 {
		t.Errorf("stats %+v: want a full state and evictions", st)
	}
}

// FuzzHandleBatch feeds arbitrary events, at arbitrary times, to two
// matchers, one event at a time and in batches, and checks that nothing
// panics, that both do the same, and that their state stays consistent.
func FuzzHandleBatch(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"), uint8(3))
	f.Add([]byte("\xff\xfe\xfd\xfc\x80\x81\x82\x83\x40\x41\x42\x43\x00\x00\x00\x00"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, max uint8) {
		doors := []*config.Door{mkDoor("a", "7000,7001,7002", 2), mkDoor("b", "7001,7000", 1), mkDoor("c", "7002", 3)}
		doors[1].Target = netip.MustParseAddr("203.0.113.9")
		doors[1].Flags = wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}
		doors[2].Sources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/30"), netip.MustParsePrefix("2001:db8::1/128")}
		cap := 1 + int(max%8)
		if max >= 128 {
			cap = 1000 // never reached
		}
		one := New(doors, Options{MaxAttempts: cap})
		batch := New(doors, Options{MaxAttempts: cap})
		times := []time.Time{t0, t0.Add(time.Second), t0.Add(-time.Hour), {}, time.Unix(1<<40, 0), time.Unix(-1<<40, 0), t0.Add(1500 * time.Millisecond)}
		srcs := append(slices.Clone(randomSrcs), netip.Addr{}, netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:198.51.100.1"))
		var evs []capture.Event
		for len(data) >= 4 {
			b := data[:4]
			data = data[4:]
			ev := capture.Event{
				Time:  times[int(b[0])%len(times)].Add(time.Duration(b[0]>>3) * 100 * time.Millisecond),
				Src:   srcs[int(b[1])%len(srcs)],
				Dst:   [...]netip.Addr{{}, netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::1")}[b[1]>>6%3],
				Port:  7000 + uint16(b[2]%4),
				Proto: [...]wire.Proto{wire.TCP, wire.UDP, 0, 255}[b[2]>>2%4],
				Flags: b[3],
			}
			evs = append(evs, ev)
		}
		var outOne []Action
		for _, ev := range evs {
			outOne = one.Handle(ev, outOne)
		}
		outBatch := batch.HandleBatch(evs, nil)
		if d := sameActions(outOne, outBatch); d != "" {
			t.Fatalf("Handle then HandleBatch: %s", d)
		}
		for _, m := range []*Matcher{one, batch} {
			if err := m.check(); err != nil {
				t.Fatal(err)
			}
			m.Expire(time.Unix(1<<41, 0), nil)
			if err := m.check(); err != nil {
				t.Fatal(err)
			}
			if st := m.Stats(); st.InProgress != 0 {
				t.Errorf("%d attempts left after all expired", st.InProgress)
			}
		}
	})
}

// TestManyFirstKnocks covers the doors looked up by first knock through
// a map, when there are many first knocks.
func TestManyFirstKnocks(t *testing.T) {
	var doors []*config.Door
	for i := range 2 * firstScanMax {
		doors = append(doors, mkDoor(fmt.Sprint("d", i), fmt.Sprintf("%d,%d", 7000+i, 8000+i), 5))
	}
	m := New(doors, Options{})
	if m.first.m == nil {
		t.Fatal("no map for many first knocks")
	}
	for i := range doors {
		a := fmt.Sprintf("198.51.100.%d", i)
		got := run(m, []step{{float64(i), fmt.Sprintf("%s %d", a, 7000+i), 0, ""}, {float64(i), fmt.Sprintf("%s %d", a, 8000+i), 0, ""}})
		want := []string{fmt.Sprintf("%s: d%d: Stage 1", a, i), fmt.Sprintf("%s: d%d: Stage 2", a, i), fmt.Sprintf("%s: d%d: OPEN SESAME", a, i)}
		if !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

package match

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// floodRate is the spoofed flood of the target, in packets a
// second, and floodPause the pause a knocker makes between two knocks:
// our knock's wait on a TCP port the firewall drops.
const (
	floodRate  = 1_000_000
	floodPause = 500 * time.Millisecond
)

// TestStage1KnockersSurviveAFlood runs, with the default settings, a
// spoofed flood of first knocks from distinct sources at floodRate for
// two seconds, through HandleBatch as the daemon calls it. Two real
// knockers pause floodPause between knocks, one from the start of the
// flood and one from its middle; each waits at stage 1 while floodRate ×
// floodPause newer attempts arrive, and must open the door.
func TestStage1KnockersSurviveAFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood of two million events")
	}
	d := mkDoor("d", "7000,8000,9000", int(config.DefaultSeqTimeout/time.Second))
	m := New([]*config.Door{d}, Options{})
	early, late := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")
	dst4, dst6 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")
	type knock struct {
		at   time.Duration
		src  netip.Addr
		port uint16
	}
	knocks := []knock{
		{0, early, 7000}, {floodPause, early, 8000}, {2 * floodPause, early, 9000},
		{time.Second, late, 7000}, {time.Second + floodPause, late, 8000}, {time.Second + 2*floodPause, late, 9000},
	}
	const total = 2 * floodRate
	var got []string
	var out []Action
	batch := make([]capture.Event, 0, benchBatch)
	flush := func() {
		out = m.HandleBatch(batch, out[:0])
		for _, a := range out {
			if a.Src == early || a.Src == late {
				got = append(got, a.String())
			}
		}
		batch = batch[:0]
	}
	for n := 0; n <= total; n++ {
		at := time.Duration(n) * time.Second / floodRate
		for len(knocks) > 0 && knocks[0].at <= at {
			k := knocks[0]
			knocks = knocks[1:]
			dst := dst4
			if k.src.Is6() {
				dst = dst6
			}
			batch = append(batch, capture.Event{Time: t0.Add(k.at), Src: k.src, Dst: dst, Port: k.port, Proto: wire.TCP, Flags: wire.SYN})
		}
		// Spoofed sources of both families, from ranges the knockers
		// are not in.
		src := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
		dst := dst4
		if n%2 == 1 {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 12: byte(n >> 24), 13: byte(n >> 16), 14: byte(n >> 8), 15: byte(n)})
			dst = dst6
		}
		batch = append(batch, capture.Event{Time: t0.Add(at), Src: src, Dst: dst, Port: 7000, Proto: wire.TCP, Flags: wire.SYN})
		if len(batch) >= benchBatch-1 {
			flush()
		}
	}
	flush()
	want := []string{
		"198.51.100.7: d: Stage 1", "198.51.100.7: d: Stage 2", "198.51.100.7: d: Stage 3", "198.51.100.7: d: OPEN SESAME",
		"2001:db8::7: d: Stage 1", "2001:db8::7: d: Stage 2", "2001:db8::7: d: Stage 3", "2001:db8::7: d: OPEN SESAME",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the real knockers (-want +got):\n%s", diff)
	}
	st := m.Stats()
	// total+1 spoofed attempts fill the cap; the rest gave way.
	if wantEvicted := total + 1 - DefaultMaxAttempts; st.InProgress != DefaultMaxAttempts || st.Evicted != uint64(wantEvicted) {
		t.Errorf("stats %+v: want the cap full and %d evicted", st, wantEvicted)
	}
	if st.Bytes > 64<<20 {
		t.Errorf("state of %d bytes at the cap, more than 64 MiB", st.Bytes)
	}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
}

// TestOneFamilyFloodSparesTheOther floods a small cap with spoofed IPv6
// first knocks while an IPv4 knocker waits at stage 1, and the other way
// round: the flood pushes out only its own family's attempts.
func TestOneFamilyFloodSparesTheOther(t *testing.T) {
	for _, tt := range []struct {
		name       string
		knocker    string
		flood      func(i int) netip.Addr
		dst, fdst  string
		knockerDst string
	}{
		{"IPv6 flood, IPv4 knocker", "198.51.100.7", func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}, "203.0.113.1", "2001:db8::1", "203.0.113.1"},
		{"IPv4 flood, IPv6 knocker", "2001:db8::7", func(i int) netip.Addr {
			return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		}, "2001:db8::1", "203.0.113.1", "2001:db8::1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := New([]*config.Door{mkDoor("d", "7000,8000,9000", 5)}, Options{MaxAttempts: 100})
			run(m, []step{{0, tt.knocker + " 7000", 0, tt.knockerDst}})
			for i := range 10_000 {
				ev := step{0.1, "198.18.0.1 7000", 0, tt.fdst}.event()
				ev.Src = tt.flood(i)
				m.Handle(ev, nil)
			}
			if st := m.Stats(); st.InProgress != 100 || st.Evicted != 10_000-99 {
				t.Errorf("stats %+v, want 100 in progress and %d evicted", st, 10_000-99)
			}
			got := run(m, []step{{0.2, tt.knocker + " 8000", 0, tt.knockerDst}, {0.3, tt.knocker + " 9000", 0, tt.knockerDst}})
			want := []string{tt.knocker + ": d: Stage 2", tt.knocker + ": d: Stage 3", tt.knocker + ": d: OPEN SESAME"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("knocker (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBothFamiliesFloodShareTheCap floods with both families at once: the
// cap is shared half and half, so each family's oldest give way.
func TestBothFamiliesFloodShareTheCap(t *testing.T) {
	m := New([]*config.Door{mkDoor("d", "7000,8000,9000", 5)}, Options{MaxAttempts: 100})
	for i := range 1000 {
		ev := step{0, "198.18.0.1 7000", 0, ""}.event()
		ev.Src = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if i%3 == 0 {
			ev.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		m.Handle(ev, nil)
	}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	if m.n1 != [2]int{50, 50} {
		t.Errorf("stage-1 attempts by family %v, want 50 each", m.n1)
	}
}

// TestSetMaxAttempts changes the cap with attempts in progress: raising
// it keeps them all and lets more in; lowering it keeps those further
// along, then the newest at stage 1, and counts the others as evicted.
func TestSetMaxAttempts(t *testing.T) {
	m := New([]*config.Door{mkDoor("d", "7000,8000,9000", 5)}, Options{MaxAttempts: 4})
	src := func(i int) string { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String() }
	// Sources 1 and 2 at stage 2, 3 to 4 at stage 1.
	run(m, []step{{0, src(1) + " 7000", 0, ""}, {0.1, src(1) + " 8000", 0, ""}, {0.2, src(2) + " 7000", 0, ""}, {0.3, src(2) + " 8000", 0, ""},
		{0.4, src(3) + " 7000", 0, ""}, {0.5, src(4) + " 7000", 0, ""}})
	m.SetMaxAttempts(6)
	run(m, []step{{0.6, src(5) + " 7000", 0, ""}, {0.7, src(6) + " 7000", 0, ""}})
	if st := m.Stats(); st.InProgress != 6 || st.Evicted != 0 || st.MaxAttempts != 6 {
		t.Fatalf("after raising the cap: %+v, want 6 in progress, none evicted", st)
	}
	m.SetMaxAttempts(3)
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.InProgress != 3 || st.Evicted != 3 || st.MaxAttempts != 3 {
		t.Fatalf("after lowering the cap: %+v, want 3 in progress, 3 evicted", st)
	}
	var got []string
	for i := 1; i <= 6; i++ {
		got = append(got, run(m, []step{{1, src(i) + " 8000", 0, ""}, {1, src(i) + " 9000", 0, ""}})...)
	}
	// 1 and 2 open; 6, the newest at stage 1, goes on (8000 takes it to
	// stage 2, 9000 opens); 3 to 5 were pushed out, and their knocks on
	// other ports start nothing.
	want := []string{
		src(1) + ": d: Stage 3", src(1) + ": d: OPEN SESAME",
		src(2) + ": d: Stage 3", src(2) + ": d: OPEN SESAME",
		src(6) + ": d: Stage 2", src(6) + ": d: Stage 3", src(6) + ": d: OPEN SESAME",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	m.SetMaxAttempts(0)
	if st := m.Stats(); st.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("cap %d after SetMaxAttempts(0), want %d", st.MaxAttempts, DefaultMaxAttempts)
	}
}

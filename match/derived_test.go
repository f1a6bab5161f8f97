package match

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
)

// The README's test vector: at tv (Unix 1767225600, step counter cv with
// 30-second steps) the door's sequence is 25702,26857,21681.
var tv = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const cv = 58907520

func derivedDoor(t *testing.T) *config.Door {
	t.Helper()
	key, err := seqderive.DecodeSecret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	if err != nil {
		t.Fatal(err)
	}
	return &config.Door{Name: "totp", SecretFile: "/secret", Secret: key, Derive: seqderive.Defaults(),
		SeqTimeout: 10 * time.Second, CmdTimeout: 10 * time.Second, StartCommand: "open %IP%"}
}

// clock is an injected clock: the matcher reads it when doors are set.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// knock sends the sequence of step c of d from src, one knock a tenth of
// a second apart from at, and returns the log lines.
func knock(t *testing.T, m *Matcher, d *config.Door, c uint64, src string, at time.Time) []string {
	t.Helper()
	var got []string
	for i, k := range d.Derived(c).Sequence {
		ev := capture.Event{Time: at.Add(time.Duration(i) * 100 * time.Millisecond), Src: netip.MustParseAddr(src),
			Dst: netip.MustParseAddr("203.0.113.1"), Port: k.Port, Proto: k.Proto, Flags: wire.SYN}
		for _, a := range m.Handle(ev, nil) {
			if a.Kind != Stage {
				got = append(got, a.String())
			}
		}
		if err := m.check(); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

const openLine = "198.51.100.7: totp: OPEN SESAME"

func TestDerivedVector(t *testing.T) {
	d := derivedDoor(t)
	clk := &clock{tv.Add(time.Second)}
	m := New([]*config.Door{d}, Options{Now: clk.now})
	var firsts []uint16
	for _, dd := range m.Doors() {
		firsts = append(firsts, dd.Sequence[0].Port)
		if dd.Step == cv && !slices.Equal(dd.Sequence, seq("25702,26857,21681")) {
			t.Errorf("step %d: sequence %v, want the README's 25702,26857,21681", cv, dd.Sequence)
		}
	}
	// The previous, the current and the next step.
	want := []uint16{d.Derived(cv - 1).Sequence[0].Port, 25702, 25778}
	if diff := cmp.Diff(want, firsts); diff != "" {
		t.Errorf("first ports of the doors (-want +got):\n%s", diff)
	}
}

func TestDerivedWindow(t *testing.T) {
	d := derivedDoor(t)
	at := tv.Add(5 * time.Second)
	for _, tc := range []struct {
		name string
		c    uint64
		want []string
	}{
		{"previous step", cv - 1, []string{openLine}},
		{"current step", cv, []string{openLine}},
		{"next step", cv + 1, []string{openLine}},
		{"two steps ago", cv - 2, nil},
		{"three steps ago", cv - 3, nil},
		{"two steps ahead", cv + 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New([]*config.Door{d}, Options{Now: (&clock{at}).now})
			if diff := cmp.Diff(tc.want, knock(t, m, d, tc.c, "198.51.100.7", at)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDerivedSingleUse(t *testing.T) {
	d := derivedDoor(t)
	steps := &MemSteps{}
	at := tv.Add(5 * time.Second)
	m := New([]*config.Door{d}, Options{Now: (&clock{at}).now, Steps: steps})
	if diff := cmp.Diff([]string{openLine}, knock(t, m, d, cv, "198.51.100.7", at)); diff != "" {
		t.Fatalf("first use (-want +got):\n%s", diff)
	}
	if got := steps.Used(d); !slices.Equal(got, []uint64{cv}) {
		t.Errorf("recorded steps %v, want [%d]", got, cv)
	}
	replay := []string{"198.51.100.7: totp: used sequence replayed (step 58907520): nothing opened"}
	if diff := cmp.Diff(replay, knock(t, m, d, cv, "198.51.100.7", at.Add(time.Second))); diff != "" {
		t.Errorf("replay from the same source (-want +got):\n%s", diff)
	}
	other := []string{"192.0.2.9: totp: used sequence replayed (step 58907520): nothing opened"}
	if diff := cmp.Diff(other, knock(t, m, d, cv, "192.0.2.9", at.Add(2*time.Second))); diff != "" {
		t.Errorf("replay from another source (-want +got):\n%s", diff)
	}
	// The step before is spent: a later one has opened the door.
	stale := []string{"198.51.100.7: totp: sequence of spent step 58907519 refused: a later step has opened the door"}
	if diff := cmp.Diff(stale, knock(t, m, d, cv-1, "198.51.100.7", at.Add(3*time.Second))); diff != "" {
		t.Errorf("earlier step (-want +got):\n%s", diff)
	}
	// The next step opens once.
	if diff := cmp.Diff([]string{openLine}, knock(t, m, d, cv+1, "198.51.100.7", at.Add(4*time.Second))); diff != "" {
		t.Errorf("next step (-want +got):\n%s", diff)
	}

	// A restart: a new matcher on the same record, in the same step
	// and in the next.
	for _, off := range []time.Duration{6 * time.Second, 31 * time.Second} {
		m2 := New([]*config.Door{d}, Options{Now: (&clock{at.Add(off)}).now, Steps: steps})
		for _, c := range []uint64{cv, cv + 1} {
			got := knock(t, m2, d, c, "192.0.2.9", at.Add(off))
			if len(got) != 1 || got[0] == "192.0.2.9: totp: OPEN SESAME" {
				t.Errorf("after a restart at +%v, step %d: %v, want a replay line", off, c, got)
			}
		}
	}
}

func TestDerivedStepsMoveWithTheClock(t *testing.T) {
	d := derivedDoor(t)
	clk := &clock{tv.Add(10 * time.Second)}
	m := New([]*config.Door{d}, Options{Now: clk.now})
	if next, ok := m.NextDeadline(); !ok || !next.Equal(tv.Add(30*time.Second)) {
		t.Errorf("NextDeadline = %v, %v; want the next step at %v", next, ok, tv.Add(30*time.Second))
	}
	steps := func() []uint64 {
		var s []uint64
		for _, dd := range m.Doors() {
			s = append(s, dd.Step)
		}
		return s
	}
	// The timer of the next step: the window moves, the step that left
	// it retires for a Seq_Timeout.
	acts := m.Expire(tv.Add(30*time.Second), nil)
	if len(acts) != 1 || acts[0].Kind != NewSteps || acts[0].String() != "door totp: now at step 58907521" {
		t.Fatalf("Expire at the next step = %v, want one NewSteps", acts)
	}
	if diff := cmp.Diff([]uint64{cv - 1, cv, cv + 1, cv + 2}, steps()); diff != "" {
		t.Errorf("steps after the move (-want +got):\n%s", diff)
	}
	if got := knock(t, m, d, cv-1, "198.51.100.7", tv.Add(31*time.Second)); got != nil {
		t.Errorf("a retiring step started an attempt: %v", got)
	}
	if next, _ := m.NextDeadline(); !next.Equal(tv.Add(40 * time.Second)) {
		t.Errorf("NextDeadline = %v, want the retiring step's end at %v", next, tv.Add(40*time.Second))
	}
	acts = m.Expire(tv.Add(40*time.Second), nil)
	if len(acts) != 1 || acts[0].Kind != NewSteps {
		t.Fatalf("Expire at the retiring step's end = %v, want one NewSteps", acts)
	}
	if diff := cmp.Diff([]uint64{cv, cv + 1, cv + 2}, steps()); diff != "" {
		t.Errorf("steps after the retiring one left (-want +got):\n%s", diff)
	}
	// An event, before any timer, moves the window too: at step cv+3,
	// the sequence of step cv+4 opens.
	want := []string{"door totp: now at step 58907523", openLine}
	if diff := cmp.Diff(want, knock(t, m, d, cv+4, "198.51.100.7", tv.Add(95*time.Second))); diff != "" {
		t.Errorf("a step ahead after the clock moved (-want +got):\n%s", diff)
	}
}

func TestDerivedAttemptInProgressSurvivesTheMove(t *testing.T) {
	d := derivedDoor(t)
	m := New([]*config.Door{d}, Options{Now: (&clock{tv.Add(29 * time.Second)}).now})
	s := d.Derived(cv - 1).Sequence
	ev := func(at time.Duration, k wire.Knock) capture.Event {
		return capture.Event{Time: tv.Add(at), Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("203.0.113.1"),
			Port: k.Port, Proto: k.Proto, Flags: wire.SYN}
	}
	var got []string
	for _, e := range []capture.Event{ev(29*time.Second, s[0]), ev(29500*time.Millisecond, s[1])} {
		for _, a := range m.Handle(e, nil) {
			got = append(got, a.String())
		}
	}
	for _, a := range m.Expire(tv.Add(30*time.Second), nil) {
		got = append(got, a.Kind.String())
	}
	for _, a := range m.Handle(ev(31*time.Second, s[2]), nil) {
		got = append(got, a.String())
	}
	want := []string{"198.51.100.7: totp: Stage 1", "198.51.100.7: totp: Stage 2", "NewSteps",
		"198.51.100.7: totp: Stage 3", openLine}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
}

type failSteps struct{ MemSteps }

func (*failSteps) Use(*config.Door, uint64) error { return errors.New("disk full") }

func TestDerivedRecordFailureRefusesOpening(t *testing.T) {
	d := derivedDoor(t)
	plain := mkDoor("plain", "7000", 5)
	at := tv.Add(5 * time.Second)
	m := New([]*config.Door{d, plain}, Options{Now: (&clock{at}).now, Steps: &failSteps{}})
	// Another source half way through the next step's sequence, and
	// the same source on it too: their attempts end with the door.
	for _, src := range []string{"192.0.2.9", "198.51.100.7"} {
		for _, k := range d.Derived(cv + 1).Sequence[:2] {
			m.Handle(capture.Event{Time: at, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("203.0.113.1"),
				Port: k.Port, Proto: k.Proto, Flags: wire.SYN}, nil)
		}
	}
	got := knock(t, m, d, cv, "198.51.100.7", at)
	want := []string{"error while recording the used step of door totp --> disabling the door"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if ds := m.Doors(); len(ds) != 1 || ds[0].Name != "plain" {
		t.Errorf("doors after the failure: %v, want the plain door alone", ds)
	}
	if next, ok := m.NextDeadline(); !ok || next.After(at.Add(time.Second)) {
		t.Errorf("NextDeadline = %v, %v: the disabled door's steps should leave at once", next, ok)
	}
	m.Expire(at.Add(time.Second), nil)
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.InProgress != 0 {
		t.Errorf("%d attempts left on the disabled door", st.InProgress)
	}
	if next, ok := m.NextDeadline(); ok {
		t.Errorf("NextDeadline = %v with no attempt and no derived door left", next)
	}
	if got := knock(t, m, d, cv, "198.51.100.7", at.Add(time.Second)); got != nil {
		t.Errorf("the disabled door answered: %v", got)
	}
}

func TestDerivedReloadKeepsAttemptsAndRecord(t *testing.T) {
	d := derivedDoor(t)
	at := tv.Add(5 * time.Second)
	clk := &clock{at}
	m := New([]*config.Door{d}, Options{Now: clk.now})
	if got := knock(t, m, d, cv, "198.51.100.7", at); len(got) != 1 {
		t.Fatalf("first use: %v", got)
	}
	s := d.Derived(cv + 1).Sequence
	m.Handle(capture.Event{Time: at.Add(time.Second), Src: netip.MustParseAddr("192.0.2.9"), Dst: netip.MustParseAddr("203.0.113.1"),
		Port: s[0].Port, Proto: s[0].Proto, Flags: wire.SYN}, nil)
	clk.t = at.Add(2 * time.Second)
	d2 := *d
	m.Reload([]*config.Door{mkDoor("plain", "7000", 5), &d2})
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.InProgress != 1 {
		t.Errorf("%d attempts in progress after the reload, want 1", st.InProgress)
	}
	if got := knock(t, m, &d2, cv, "198.51.100.7", at.Add(3*time.Second)); len(got) != 1 || got[0] == openLine {
		t.Errorf("the used step after a reload: %v, want a replay line", got)
	}
}

func TestDerivedDoorsSharingASecretShareTheirSteps(t *testing.T) {
	a := derivedDoor(t)
	b := derivedDoor(t)
	b.Name = "other"
	b.Derive.Low, b.Derive.High = 40000, 46999
	at := tv.Add(5 * time.Second)
	m := New([]*config.Door{a, b}, Options{Now: (&clock{at}).now})
	if diff := cmp.Diff([]string{openLine}, knock(t, m, a, cv, "198.51.100.7", at)); diff != "" {
		t.Fatalf("door a (-want +got):\n%s", diff)
	}
	want := []string{"198.51.100.7: other: used sequence replayed (step 58907520): nothing opened"}
	if diff := cmp.Diff(want, knock(t, m, b, cv, "198.51.100.7", at.Add(time.Second))); diff != "" {
		t.Errorf("door other, same secret and step (-want +got):\n%s", diff)
	}
}

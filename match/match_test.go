package match

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// seq parses "7000,8000:udp" without the config package's checks.
func seq(s string) []wire.Knock {
	var out []wire.Knock
	for _, f := range strings.Split(s, ",") {
		k := wire.Knock{Proto: wire.TCP}
		port, proto, _ := strings.Cut(f, ":")
		if proto == "udp" {
			k.Proto = wire.UDP
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			panic(err)
		}
		k.Port = uint16(n)
		out = append(out, k)
	}
	return out
}

func mkDoor(name, s string, timeout int) *config.Door {
	return &config.Door{Name: name, Sequence: seq(s), SeqTimeout: time.Duration(timeout) * time.Second,
		CmdTimeout: 10 * time.Second, StartCommand: "open %IP%"}
}

// step is one input: a knock "SRC>PORT[:udp]" (optionally "SRC>DST:PORT"
// is not needed; Dst defaults to 203.0.113.1), or "expire" to run timers.
type step struct {
	at    float64 // seconds after t0
	knock string  // "198.51.100.7 7000" or "198.51.100.7 7000:udp"
	flags uint8   // TCP flags; 0 means SYN
	dst   string  // destination; empty means 203.0.113.1
}

func (s step) event() capture.Event {
	src, k, _ := strings.Cut(s.knock, " ")
	kn := seq(k)[0]
	ev := capture.Event{Time: t0.Add(time.Duration(s.at * float64(time.Second))),
		Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("203.0.113.1"), Port: kn.Port, Proto: kn.Proto}
	if s.dst != "" {
		ev.Dst = netip.MustParseAddr(s.dst)
	}
	if kn.Proto == wire.TCP {
		ev.Flags = s.flags
		if ev.Flags == 0 {
			ev.Flags = wire.SYN
		}
	}
	return ev
}

func run(m *Matcher, steps []step) []string {
	var got []string
	for _, s := range steps {
		var acts []Action
		if s.knock == "expire" {
			acts = m.Expire(t0.Add(time.Duration(s.at*float64(time.Second))), nil)
		} else {
			acts = m.Handle(s.event(), nil)
		}
		for _, a := range acts {
			got = append(got, a.String())
		}
		if err := m.check(); err != nil {
			panic(fmt.Sprintf("after %+v: %v", s, err))
		}
	}
	return got
}

func TestMatcher(t *testing.T) {
	const a, b = "198.51.100.7", "198.51.100.8"
	ssh := func() []*config.Door {
		return []*config.Door{mkDoor("openSSH", "7000,8000,9000", 5), mkDoor("closeSSH", "9000,8000,7000", 5)}
	}
	synNoAck := mkDoor("strict", "7000,8000", 5)
	synNoAck.Flags = wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}
	udp := mkDoor("mixed", "2222:udp,3333,4444:udp", 15)
	shareA, shareB := mkDoor("A", "7000,8000", 5), mkDoor("B", "7000,9000", 5)
	targeted := mkDoor("t", "7000,8000", 5)
	targeted.Target = netip.MustParseAddr("203.0.113.9")
	one := mkDoor("one", "7000", 5)
	withSources := func(d *config.Door, prefixes ...string) *config.Door {
		for _, p := range prefixes {
			d.Sources = append(d.Sources, netip.MustParsePrefix(p))
		}
		return d
	}
	const out4, out6 = "203.0.113.50", "2001:db8:2::5"

	tests := []struct {
		name  string
		doors []*config.Door
		steps []step
		want  []string
	}{
		{
			name:  "each stage then open",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {1, a + " 8000", 0, ""}, {2, a + " 9000", 0, ""}},
			want:  []string{a + ": openSSH: Stage 1", a + ": openSSH: Stage 2", a + ": openSSH: Stage 3", a + ": openSSH: OPEN SESAME"},
		},
		{
			name:  "second door of the tutorial",
			doors: ssh(),
			steps: []step{{0, a + " 9000", 0, ""}, {1, a + " 8000", 0, ""}, {2, a + " 7000", 0, ""}},
			want:  []string{a + ": closeSSH: Stage 1", a + ": closeSSH: Stage 2", a + ": closeSSH: Stage 3", a + ": closeSSH: OPEN SESAME"},
		},
		{
			name:  "wrong port ends the attempt",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {1, a + " 9000", 0, ""}, {2, a + " 8000", 0, ""}},
			// 9000 ends openSSH and, being closeSSH's first knock,
			// starts it; 8000 then advances closeSSH.
			want: []string{a + ": openSSH: Stage 1", a + ": closeSSH: Stage 1", a + ": closeSSH: Stage 2"},
		},
		{
			name:  "a knock on no door's first port ends and starts nothing",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {1, a + " 8000:udp", 0, ""}, {2, a + " 8000", 0, ""}, {3, a + " 9000", 0, ""}},
			want:  []string{a + ": openSSH: Stage 1", a + ": closeSSH: Stage 1"},
		},
		{
			name:  "flags mismatch is ignored without reset",
			doors: []*config.Door{synNoAck},
			steps: []step{
				{0, a + " 7000", wire.SYN | wire.ACK, ""}, // ignored: no attempt starts
				{1, a + " 7000", 0, ""},
				{2, a + " 9999", wire.ACK, ""}, // ignored for the door: no reset
				{3, a + " 8000", 0, ""},
			},
			want: []string{a + ": strict: Stage 1", a + ": strict: Stage 2", a + ": strict: OPEN SESAME"},
		},
		{
			name:  "udp and tcp mixed",
			doors: []*config.Door{udp},
			steps: []step{{0, a + " 2222", 0, ""}, {1, a + " 2222:udp", 0, ""}, {2, a + " 3333", 0, ""}, {3, a + " 4444:udp", 0, ""}},
			want:  []string{a + ": mixed: Stage 1", a + ": mixed: Stage 2", a + ": mixed: Stage 3", a + ": mixed: OPEN SESAME"},
		},
		{
			name:  "knock just before the timeout counts",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {2, a + " 8000", 0, ""}, {4.999, a + " 9000", 0, ""}},
			want:  []string{a + ": openSSH: Stage 1", a + ": openSSH: Stage 2", a + ": openSSH: Stage 3", a + ": openSSH: OPEN SESAME"},
		},
		{
			name:  "knock at the timeout is too late",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {2, a + " 8000", 0, ""}, {5, a + " 9000", 0, ""}},
			want:  []string{a + ": openSSH: Stage 1", a + ": openSSH: Stage 2", a + ": openSSH: sequence timeout (stage 2)", a + ": closeSSH: Stage 1"},
		},
		{
			name:  "timeout logged by the timer without traffic",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {4.9, "expire", 0, ""}, {5.0, "expire", 0, ""}, {60, "expire", 0, ""}},
			want:  []string{a + ": openSSH: Stage 1", a + ": openSSH: sequence timeout (stage 1)"},
		},
		{
			name:  "tutorial: telnet 7000, sleep 6, telnet 8000",
			doors: ssh(),
			steps: []step{{0, "127.0.0.1 7000", 0, ""}, {6, "127.0.0.1 8000", 0, ""}},
			want:  []string{"127.0.0.1: openSSH: Stage 1", "127.0.0.1: openSSH: sequence timeout (stage 1)"},
		},
		{
			name:  "two knockers interleaved",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {0.1, b + " 7000", 0, ""}, {0.2, a + " 8000", 0, ""}, {0.3, b + " 8000", 0, ""},
				{0.4, b + " 9000", 0, ""}, {0.5, a + " 9000", 0, ""}},
			want: []string{a + ": openSSH: Stage 1", b + ": openSSH: Stage 1", a + ": openSSH: Stage 2", b + ": openSSH: Stage 2",
				b + ": openSSH: Stage 3", b + ": openSSH: OPEN SESAME", a + ": openSSH: Stage 3", a + ": openSSH: OPEN SESAME"},
		},
		{
			name:  "one knocker failing does not disturb another",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {0.1, b + " 7000", 0, ""}, {0.2, b + " 1234:udp", 0, ""}, {0.3, a + " 8000", 0, ""}, {0.4, a + " 9000", 0, ""}},
			want:  []string{a + ": openSSH: Stage 1", b + ": openSSH: Stage 1", a + ": openSSH: Stage 2", a + ": openSSH: Stage 3", a + ": openSSH: OPEN SESAME"},
		},
		{
			name:  "two doors sharing a first port run side by side",
			doors: []*config.Door{shareA, shareB},
			steps: []step{{0, a + " 7000", 0, ""}, {1, a + " 9000", 0, ""}},
			want:  []string{a + ": A: Stage 1", a + ": B: Stage 1", a + ": B: Stage 2", a + ": B: OPEN SESAME"},
		},
		{
			name:  "repeated knock is ignored",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {0.2, a + " 7000", 0, ""}, {1, a + " 8000", 0, ""}, {1.1, a + " 8000", 0, ""}, {2, a + " 9000", 0, ""}},
			want:  []string{a + ": openSSH: Stage 1", a + ": openSSH: Stage 2", a + ": openSSH: Stage 3", a + ": openSSH: OPEN SESAME"},
		},
		{
			name:  "a repeat that is the expected knock advances",
			doors: []*config.Door{mkDoor("twice", "7000,7000,8000", 5)},
			steps: []step{{0, a + " 7000", 0, ""}, {0.1, a + " 7000", 0, ""}, {0.2, a + " 7000", 0, ""}, {0.3, a + " 8000", 0, ""}},
			want:  []string{a + ": twice: Stage 1", a + ": twice: Stage 2", a + ": twice: Stage 3", a + ": twice: OPEN SESAME"},
		},
		{
			name:  "a knock from two stages back ends the attempt and may restart it",
			doors: ssh(),
			steps: []step{{0, a + " 7000", 0, ""}, {0.1, a + " 8000", 0, ""}, {0.2, a + " 7000", 0, ""}, {0.3, a + " 8000", 0, ""}, {0.4, a + " 9000", 0, ""}},
			want: []string{a + ": openSSH: Stage 1", a + ": openSSH: Stage 2", a + ": openSSH: Stage 1",
				a + ": openSSH: Stage 2", a + ": openSSH: Stage 3", a + ": openSSH: OPEN SESAME"},
		},
		{
			name:  "target: knocks to another address do not count",
			doors: []*config.Door{targeted},
			steps: []step{{0, a + " 7000", 0, "203.0.113.1"}, {1, a + " 7000", 0, "203.0.113.9"}, {2, a + " 8000", 0, "203.0.113.1"}, {3, a + " 8000", 0, "203.0.113.9"}},
			want:  []string{a + ": t: Stage 1", a + ": t: Stage 2", a + ": t: OPEN SESAME"},
		},
		{
			name:  "one-port door opens on one knock",
			doors: []*config.Door{one},
			steps: []step{{0, a + " 7000", 0, ""}, {0.1, a + " 7000", 0, ""}},
			want:  []string{a + ": one: Stage 1", a + ": one: OPEN SESAME", a + ": one: Stage 1", a + ": one: OPEN SESAME"},
		},
		{
			name:  "source: a knocker from inside the list opens, one from outside starts nothing",
			doors: []*config.Door{withSources(mkDoor("lan", "7000,8000,9000", 5), "198.51.100.0/24", "2001:db8:1::/48")},
			steps: []step{{0, out4 + " 7000", 0, ""}, {0.1, a + " 7000", 0, ""}, {0.2, out4 + " 8000", 0, ""}, {0.3, a + " 8000", 0, ""},
				{0.4, out4 + " 9000", 0, ""}, {0.5, a + " 9000", 0, ""}},
			want: []string{a + ": lan: Stage 1", a + ": lan: Stage 2", a + ": lan: Stage 3", a + ": lan: OPEN SESAME"},
		},
		{
			name:  "source: IPv6 prefixes",
			doors: []*config.Door{withSources(mkDoor("lan", "7000,8000", 5), "198.51.100.0/24", "2001:db8:1::/48")},
			steps: []step{{0, out6 + " 7000", 0, "2001:db8::1"}, {0.1, "2001:db8:1::5 7000", 0, "2001:db8::1"},
				{0.2, out6 + " 8000", 0, "2001:db8::1"}, {0.3, "2001:db8:1::5 8000", 0, "2001:db8::1"}},
			want: []string{"2001:db8:1::5: lan: Stage 1", "2001:db8:1::5: lan: Stage 2", "2001:db8:1::5: lan: OPEN SESAME"},
		},
		{
			name:  "source: a bare address, and a one-port door",
			doors: []*config.Door{withSources(mkDoor("one", "7000", 5), "198.51.100.8/32")},
			steps: []step{{0, a + " 7000", 0, ""}, {0.1, b + " 7000", 0, ""}},
			want:  []string{b + ": one: Stage 1", b + ": one: OPEN SESAME"},
		},
		{
			name: "source: a shared first port starts only the doors that take the source",
			doors: []*config.Door{withSources(mkDoor("lan", "7000,8000", 5), "198.51.100.0/24"),
				mkDoor("open", "7000,9000", 5)},
			steps: []step{{0, out4 + " 7000", 0, ""}, {0.1, out4 + " 8000", 0, ""}, {0.2, a + " 7000", 0, ""}, {0.3, a + " 8000", 0, ""}},
			// 8000 is only lan's port: the outsider's knock there counts
			// for nothing, so it does not end its attempt on open either.
			want: []string{out4 + ": open: Stage 1", a + ": lan: Stage 1", a + ": open: Stage 1", a + ": lan: Stage 2", a + ": lan: OPEN SESAME"},
		},
		{
			name: "source: a knock on a port only source-limited doors watch does not end another door's attempt",
			doors: []*config.Door{mkDoor("open", "7000,9000", 5),
				withSources(mkDoor("lan", "8000,8001", 5), "198.51.100.0/24")},
			steps: []step{{0, out4 + " 7000", 0, ""}, {0.1, out4 + " 8000", 0, ""}, {0.2, out4 + " 9000", 0, ""},
				{1, a + " 7000", 0, ""}, {1.1, a + " 8000", 0, ""}, {1.2, a + " 9000", 0, ""}},
			// From inside the list, 8000 is a counted knock: it ends a's
			// attempt on open and starts lan.
			want: []string{out4 + ": open: Stage 1", out4 + ": open: Stage 2", out4 + ": open: OPEN SESAME",
				a + ": open: Stage 1", a + ": lan: Stage 1"},
		},
		{
			name: "source: a port some door without a list watches counts from anywhere",
			doors: []*config.Door{mkDoor("open", "7000,9000", 5),
				withSources(mkDoor("lan", "8000,8001", 5), "198.51.100.0/24"), mkDoor("other", "8000,9001", 5)},
			steps: []step{{0, out4 + " 7000", 0, ""}, {0.1, out4 + " 8000", 0, ""}, {0.2, out4 + " 9000", 0, ""}},
			want:  []string{out4 + ": open: Stage 1", out4 + ": other: Stage 1"},
		},
		{
			name:  "ipv6 knocker",
			doors: ssh(),
			steps: []step{{0, "2001:db8::7 7000", 0, "2001:db8::1"}, {1, "2001:db8::7 8000", 0, "2001:db8::1"}, {2, "2001:db8::7 9000", 0, "2001:db8::1"}},
			want:  []string{"2001:db8::7: openSSH: Stage 1", "2001:db8::7: openSSH: Stage 2", "2001:db8::7: openSSH: Stage 3", "2001:db8::7: openSSH: OPEN SESAME"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(tt.doors, Options{})
			got := run(m, tt.steps)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReloadWithOtherSourcesEndsAttempts: a door whose Source list
// changes drops its attempts, which started under the old list.
func TestReloadWithOtherSourcesEndsAttempts(t *testing.T) {
	const a = "198.51.100.7"
	lan := func(p string) *config.Door {
		d := mkDoor("lan", "7000,8000,9000", 5)
		d.Sources = []netip.Prefix{netip.MustParsePrefix(p)}
		return d
	}
	m := New([]*config.Door{lan("198.51.100.0/24")}, Options{})
	run(m, []step{{0, a + " 7000", 0, ""}, {1, a + " 8000", 0, ""}})
	m.Reload([]*config.Door{lan("198.51.100.0/24")})
	if st := m.Stats(); st.InProgress != 1 {
		t.Fatalf("%d attempts after a reload with the same sources, want 1", st.InProgress)
	}
	m.Reload([]*config.Door{lan("198.51.100.0/25")})
	if st := m.Stats(); st.InProgress != 0 {
		t.Errorf("%d attempts after a reload with other sources, want 0", st.InProgress)
	}
}

func TestOpenActionCarriesDoorAndSource(t *testing.T) {
	d := mkDoor("openSSH", "7000", 5)
	m := New([]*config.Door{d}, Options{})
	acts := m.Handle(step{1, "2001:db8::7 7000", 0, "2001:db8::1"}.event(), nil)
	want := []Action{
		{Kind: Stage, Door: d, Src: netip.MustParseAddr("2001:db8::7"), Stage: 1, Time: t0.Add(time.Second)},
		{Kind: Open, Door: d, Src: netip.MustParseAddr("2001:db8::7"), Time: t0.Add(time.Second)},
	}
	if diff := cmp.Diff(want, acts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNextDeadline(t *testing.T) {
	fast, slow := mkDoor("fast", "7000,8000", 2), mkDoor("slow", "9000,8000", 30)
	m := New([]*config.Door{fast, slow}, Options{})
	if _, ok := m.NextDeadline(); ok {
		t.Fatal("deadline with no attempt in progress")
	}
	m.Handle(step{0, "198.51.100.1 9000", 0, ""}.event(), nil)
	m.Handle(step{1, "198.51.100.2 7000", 0, ""}.event(), nil)
	if d, _ := m.NextDeadline(); !d.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("next deadline %v, want t0+3s", d.Sub(t0))
	}
	m.Expire(t0.Add(3*time.Second), nil)
	if d, _ := m.NextDeadline(); !d.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("next deadline %v, want t0+30s", d.Sub(t0))
	}
}

// fakeOneTime hands out sequences from a list, recording each use.
type fakeOneTime struct {
	next []string
	used []int64
	fail error
}

func (f *fakeOneTime) use(d *config.Door) ([]wire.Knock, config.OneTimeLine, error) {
	if f.fail != nil {
		return nil, config.OneTimeLine{}, f.fail
	}
	f.used = append(f.used, d.OneTimeOffset)
	if len(f.next) == 0 {
		return nil, config.OneTimeLine{}, fmt.Errorf("%s: %w", d.OneTimeFile, config.ErrNoSequence)
	}
	s := f.next[0]
	f.next = f.next[1:]
	return seq(s), config.OneTimeLine{Off: d.OneTimeOffset + 100}, nil
}

func TestOneTimeSequences(t *testing.T) {
	const a = "198.51.100.7"
	d := mkDoor("openHello", "6110,6120,6130", 5)
	d.OneTimeFile = "sequences.seq"
	closeHello := mkDoor("closeHello", "9100,9500,9900", 5)
	f := &fakeOneTime{next: []string{"6140,6150,6160"}}
	m := New([]*config.Door{d, closeHello}, Options{OneTime: f.use})
	got := run(m, []step{
		{0, a + " 6110", 0, ""}, {0.1, a + " 6120", 0, ""}, {0.2, a + " 6130", 0, ""},
		// The used sequence never works again.
		{1, a + " 6110", 0, ""}, {1.1, a + " 6120", 0, ""}, {1.2, a + " 6130", 0, ""},
		// The next one does, once, and then the door is spent.
		{2, a + " 6140", 0, ""}, {2.1, a + " 6150", 0, ""}, {2.2, a + " 6160", 0, ""},
		{3, a + " 6140", 0, ""},
		// Other doors keep working.
		{4, a + " 9100", 0, ""}, {4.1, a + " 9500", 0, ""}, {4.2, a + " 9900", 0, ""},
	})
	want := []string{
		a + ": openHello: Stage 1", a + ": openHello: Stage 2", a + ": openHello: Stage 3", a + ": openHello: OPEN SESAME",
		"new sequence for door openHello: 6140:tcp,6150:tcp,6160:tcp",
		a + ": openHello: Stage 1", a + ": openHello: Stage 2", a + ": openHello: Stage 3", a + ": openHello: OPEN SESAME",
		"no more sequences left in the one time sequences file for door openHello --> disabling the door",
		a + ": closeHello: Stage 1", a + ": closeHello: Stage 2", a + ": closeHello: Stage 3", a + ": closeHello: OPEN SESAME",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{0, 100}, f.used); diff != "" {
		t.Errorf("offsets used (-want +got):\n%s", diff)
	}
	var names []string
	for _, d := range m.Doors() {
		names = append(names, d.Name)
	}
	if diff := cmp.Diff([]string{"closeHello"}, names); diff != "" {
		t.Errorf("doors left (-want +got):\n%s", diff)
	}
}

func TestOneTimeWriteFailureRefusesOpening(t *testing.T) {
	d := mkDoor("otp", "6110,6120", 5)
	d.OneTimeFile = "sequences.seq"
	f := &fakeOneTime{fail: errors.New("disk full")}
	m := New([]*config.Door{d}, Options{OneTime: f.use})
	got := run(m, []step{{0, "198.51.100.7 6110", 0, ""}, {1, "198.51.100.7 6120", 0, ""}})
	want := []string{"198.51.100.7: otp: Stage 1", "198.51.100.7: otp: Stage 2",
		"error while disabling used one time sequence for door otp --> disabling the door"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

// A used line that was marked, followed by a line that is not a
// sequence: the opening stands (the used line cannot be replayed), then
// the door stops. The opening used to be refused as if marking had failed.
func TestOneTimeBadNextLineKeepsTheOpening(t *testing.T) {
	d := mkDoor("otp", "6110,6120", 5)
	d.OneTimeFile = "sequences.seq"
	f := &fakeOneTime{fail: fmt.Errorf("sequences.seq:2: %w", config.ErrBadLine)}
	m := New([]*config.Door{d}, Options{OneTime: f.use})
	got := run(m, []step{{0, "198.51.100.7 6110", 0, ""}, {1, "198.51.100.7 6120", 0, ""}})
	want := []string{"198.51.100.7: otp: Stage 1", "198.51.100.7: otp: Stage 2", "198.51.100.7: otp: OPEN SESAME",
		"the next one time sequence for door otp is not a sequence --> disabling the door"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestOneTimeEndsOtherKnockersOfTheOldSequence(t *testing.T) {
	d := mkDoor("otp", "6110,6120", 5)
	d.OneTimeFile = "sequences.seq"
	f := &fakeOneTime{next: []string{"6210,6220"}}
	m := New([]*config.Door{d}, Options{OneTime: f.use})
	got := run(m, []step{{0, "198.51.100.8 6110", 0, ""}, {0.1, "198.51.100.7 6110", 0, ""}, {1, "198.51.100.7 6120", 0, ""}, {2, "198.51.100.8 6120", 0, ""}})
	want := []string{"198.51.100.8: otp: Stage 1", "198.51.100.7: otp: Stage 1", "198.51.100.7: otp: Stage 2", "198.51.100.7: otp: OPEN SESAME",
		"new sequence for door otp: 6210:tcp,6220:tcp"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestBoundedStateKeepsTheFurthestAlong(t *testing.T) {
	d := mkDoor("openSSH", "7000,8000,9000", 5)
	m := New([]*config.Door{d}, Options{MaxAttempts: 100})
	legit := "198.51.100.7"
	run(m, []step{{0, legit + " 7000", 0, ""}, {0.1, legit + " 8000", 0, ""}})
	// A spoofed flood on the first port, far larger than the cap.
	for i := 0; i < 10000; i++ {
		ev := step{0.2, "198.18.0.1 7000", 0, ""}.event()
		ev.Src = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		m.Handle(ev, nil)
	}
	if st := m.Stats(); st.InProgress != 100 || st.Evicted != 10000-99 {
		t.Errorf("stats %+v, want 100 in progress and %d evicted", st, 10000-99)
	}
	got := run(m, []step{{0.3, legit + " 9000", 0, ""}})
	want := []string{legit + ": openSSH: Stage 3", legit + ": openSSH: OPEN SESAME"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("legitimate knocker (-want +got):\n%s", diff)
	}
}

func TestFullOfAdvancedAttemptsRefusesNewcomers(t *testing.T) {
	d := mkDoor("d", "7000,8000,9000", 5)
	m := New([]*config.Door{d}, Options{MaxAttempts: 2})
	run(m, []step{{0, "198.51.100.1 7000", 0, ""}, {0, "198.51.100.1 8000", 0, ""}, {0, "198.51.100.2 7000", 0, ""}, {0, "198.51.100.2 8000", 0, ""}})
	got := run(m, []step{{1, "198.51.100.3 7000", 0, ""}, {1, "198.51.100.1 9000", 0, ""}, {1, "198.51.100.2 9000", 0, ""}})
	want := []string{"198.51.100.3: d: Stage 1", "198.51.100.1: d: Stage 3", "198.51.100.1: d: OPEN SESAME", "198.51.100.2: d: Stage 3", "198.51.100.2: d: OPEN SESAME"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if st := m.Stats(); st.Refused != 1 || st.Evicted != 0 {
		t.Errorf("stats %+v, want 1 refused and none evicted", st)
	}
}

func TestReloadKeepsUnchangedDoors(t *testing.T) {
	const a = "198.51.100.7"
	m := New([]*config.Door{mkDoor("keep", "7000,8000,9000", 5), mkDoor("change", "7000,8000,9999", 5)}, Options{})
	run(m, []step{{0, a + " 7000", 0, ""}, {1, a + " 8000", 0, ""}})
	m.Reload([]*config.Door{mkDoor("change", "7000,8000,9998", 5), mkDoor("keep", "7000,8000,9000", 5)})
	got := run(m, []step{{2, a + " 9000", 0, ""}})
	want := []string{a + ": keep: Stage 3", a + ": keep: OPEN SESAME"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if st := m.Stats(); st.InProgress != 0 {
		t.Errorf("%d attempts left, want 0", st.InProgress)
	}
}

func TestStateIsReleased(t *testing.T) {
	m := New([]*config.Door{mkDoor("d", "7000,8000", 5)}, Options{})
	for i := 0; i < 1000; i++ {
		ev := step{0, "198.18.0.1 7000", 0, ""}.event()
		ev.Src = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		m.Handle(ev, nil)
	}
	m.Expire(t0.Add(time.Minute), nil)
	if st := m.Stats(); st.InProgress != 0 || m.tab.n != 0 {
		t.Errorf("after expiry: %+v, %d sources", st, m.tab.n)
	}
	for f, l := range m.stage1 {
		if l.head != none || m.n1[f] != 0 {
			t.Errorf("stage-1 list of family %d not empty (%d counted)", f, m.n1[f])
		}
	}
}

// check verifies the matcher's internal lists: every attempt is reachable
// once from its source's table entry, its timeout group and its stage
// list, and the free list holds exactly the other slots. It also checks
// the table: each entry sits where a lookup of its key finds it, carries
// its key's hash and a non-empty chain, and the entries are counted.
func (m *Matcher) check() error {
	if err := m.tab.check(); err != nil {
		return err
	}
	seen := map[int32]bool{}
	for p := range m.tab.slots {
		s := &m.tab.slots[p]
		if s.idx == 0 {
			continue
		}
		head := m.tab.head(uint32(p))
		if head < 0 || int(head) >= len(m.atts) {
			return fmt.Errorf("table entry %d: chain head %d out of %d attempts", p, head, len(m.atts))
		}
		src := m.atts[head].src
		if h := m.tab.hash(src); h != s.hash {
			return fmt.Errorf("table entry %d: hash %#x, its key %v hashes to %#x", p, s.hash, src, h)
		}
		if pos, ok := m.tab.find(src, s.hash, m.atts); !ok || pos != uint32(p) {
			return fmt.Errorf("table entry %d: its key %v found at %d (%v)", p, src, pos, ok)
		}
		for i := head; i != none; i = m.atts[i].srcNext {
			if i < 0 || int(i) >= len(m.atts) {
				return fmt.Errorf("chain of %v: attempt %d out of %d", src, i, len(m.atts))
			}
			if seen[i] || len(seen) > len(m.atts) {
				return fmt.Errorf("attempt %d reached twice", i)
			}
			seen[i] = true
			a := &m.atts[i]
			if a.src != src || a.hash != s.hash {
				return fmt.Errorf("attempt %d of %v (hash %#x) in %v's chain (hash %#x)", i, a.src, a.hash, src, s.hash)
			}
			if a.stage < 1 || int(a.stage) >= len(m.doors[a.door].seq) {
				return fmt.Errorf("attempt %d at stage %d of a %d-knock door", i, a.stage, len(m.doors[a.door].seq))
			}
		}
	}
	if len(seen) != m.count {
		return fmt.Errorf("%d attempts reachable, count %d", len(seen), m.count)
	}
	for i := range m.atts {
		if a := &m.atts[i]; a.stage != 0 && !seen[int32(i)] {
			return fmt.Errorf("attempt %d (of %v, stage %d) unreachable from the table", i, a.src, a.stage)
		}
	}
	inGroups := 0
	for _, g := range m.groups {
		for i := g.l.head; i != none; i = m.atts[i].link[byTimeout].next {
			if !seen[i] {
				return fmt.Errorf("timeout list holds freed attempt %d", i)
			}
			inGroups++
		}
	}
	inStages, atStage1 := 0, 0
	for i := range m.atts {
		if m.atts[i].stage == 1 {
			atStage1++
		}
	}
	for f, l := range m.stage1 {
		n, prev := 0, int32(none)
		for i := l.head; i != none; i = m.atts[i].link[byStage].next {
			a := &m.atts[i]
			if !seen[i] || a.stage != 1 || family(a.kind) != f {
				return fmt.Errorf("stage-1 list of family %d holds attempt %d at stage %d of family %d", f, i, a.stage, family(a.kind))
			}
			if a.link[byStage].prev != prev {
				return fmt.Errorf("stage-1 list of family %d: attempt %d links back to %d, not %d", f, i, a.link[byStage].prev, prev)
			}
			if prev != none && m.atts[prev].start > a.start {
				return fmt.Errorf("stage-1 list of family %d: attempt %d starts before %d, ahead of it", f, i, prev)
			}
			prev = i
			n++
		}
		if l.tail != prev || n != m.n1[f] {
			return fmt.Errorf("stage-1 list of family %d: %d attempts, %d counted, tail %d, last %d", f, n, m.n1[f], l.tail, prev)
		}
		inStages += n
	}
	free := 0
	for i := m.free; i != none; i = m.atts[i].srcNext {
		if seen[i] || free > len(m.atts) {
			return fmt.Errorf("free list holds live or repeated attempt %d", i)
		}
		if m.atts[i].stage != 0 {
			return fmt.Errorf("free attempt %d at stage %d", i, m.atts[i].stage)
		}
		free++
	}
	if inGroups != m.count || inStages != atStage1 || free+m.count != len(m.atts) {
		return fmt.Errorf("count %d, in timeout lists %d, in stage-1 lists %d of %d at stage 1, free %d of %d", m.count, inGroups, inStages, atStage1, free, len(m.atts))
	}
	if m.count > m.max {
		return fmt.Errorf("%d attempts, over the cap of %d", m.count, m.max)
	}
	return nil
}

func TestOneTimeWithSeveralKnockersKeepsStateConsistent(t *testing.T) {
	d := mkDoor("otp", "6110:udp,6120:udp", 5)
	d.OneTimeFile = "sequences.seq"
	fixed := mkDoor("fixed", "7000:udp,7001:udp", 5)
	f := &fakeOneTime{next: []string{"6210:udp,6220:udp", "6310:udp,6320:udp", "6410:udp,6420:udp"}}
	m := New([]*config.Door{fixed, d}, Options{OneTime: f.use})
	const a, b = "198.51.100.1", "198.51.100.2"
	var got []string
	for i, sq := range [][2]string{{"6110", "6120"}, {"6210", "6220"}, {"6310", "6320"}} {
		at := float64(i)
		got = append(got, run(m, []step{
			{at, a + " " + sq[0] + ":udp", 0, ""}, {at, b + " " + sq[0] + ":udp", 0, ""},
			{at, a + " " + sq[1] + ":udp", 0, ""}, {at, b + " " + sq[1] + ":udp", 0, ""},
		})...)
	}
	opens := 0
	for _, l := range got {
		if strings.HasSuffix(l, "otp: OPEN SESAME") {
			opens++
		}
	}
	if opens != 3 {
		t.Errorf("%d one-time openings, want 3 (one per sequence):\n%s", opens, strings.Join(got, "\n"))
	}
	if diff := cmp.Diff([]int64{0, 100, 200}, f.used); diff != "" {
		t.Errorf("offsets used (-want +got):\n%s", diff)
	}
}

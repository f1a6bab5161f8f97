package match

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// explain runs steps and returns, for each action, its line, and for a
// timeout its explanation too.
func explain(m *Matcher, steps []step) []string {
	var got []string
	for _, a := range actionsOf(m, steps) {
		got = append(got, a.String())
		if a.Kind == Timeout {
			got = append(got, a.Explanation(a.Src.String()))
		}
	}
	return got
}

func actionsOf(m *Matcher, steps []step) []Action {
	var all []Action
	for _, s := range steps {
		if s.knock == "expire" {
			all = m.Expire(t0.Add(time.Duration(s.at*float64(time.Second))), all)
		} else {
			all = m.Handle(s.event(), all)
		}
		if err := m.check(); err != nil {
			panic(err)
		}
	}
	return all
}

func TestExplanations(t *testing.T) {
	const a = "198.18.0.2"
	ssh := mkDoor("openSSH", "7000,8000,9000", 5)
	other := mkDoor("other", "8500,9500", 5)
	strict := mkDoor("strict", "7100,8100", 5)
	strict.Flags = wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}
	doors := []*config.Door{ssh, other, strict}
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{{
		name:  "wrong port",
		steps: []step{{0, a + " 7000", 0, ""}, {1, a + " 8500", 0, ""}},
		want: []string{a + ": openSSH: Stage 1",
			a + ": openSSH: attempt ended at stage 1: got 8500/tcp, expected 8000/tcp",
			a + ": other: Stage 1"},
	}, {
		name:  "wrong protocol at stage 2",
		steps: []step{{0, a + " 7000", 0, ""}, {1, a + " 8000", 0, ""}, {2, a + " 9000:udp", 0, ""}},
		want: []string{a + ": openSSH: Stage 1", a + ": openSSH: Stage 2",
			a + ": openSSH: attempt ended at stage 2: got 9000/udp, expected 9000/tcp"},
	}, {
		name:  "timeout",
		steps: []step{{0, a + " 7000", 0, ""}, {1, a + " 8000", 0, ""}, {6, "expire", 0, ""}},
		want: []string{a + ": openSSH: Stage 1", a + ": openSSH: Stage 2",
			a + ": openSSH: sequence timeout (stage 2)",
			a + ": openSSH: attempt ended at stage 2: timed out after 5s (Seq_Timeout), expected 9000/tcp"},
	}, {
		name:  "flags at the first knock and later",
		steps: []step{{0, a + " 7100", wire.SYN | wire.ACK, ""}, {1, a + " 7100", 0, ""}, {2, a + " 8100", wire.ACK, ""}, {3, a + " 8100", 0, ""}},
		want: []string{a + ": strict: 7100/tcp ignored: flags syn,ack do not match TCPFlags syn,!ack",
			a + ": strict: Stage 1",
			a + ": strict: 8100/tcp ignored at stage 1: flags ack do not match TCPFlags syn,!ack",
			a + ": strict: Stage 2", a + ": strict: OPEN SESAME"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(doors, Options{Explain: true})
			if diff := cmp.Diff(tt.want, explain(m, tt.steps)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// Without Explain, the same knocks give the same actions less
			// the explanations.
			var want []string
			for _, a := range actionsOf(New(doors, Options{Explain: true}), tt.steps) {
				if a.Kind != Ended && a.Kind != Ignored {
					want = append(want, a.String())
				}
			}
			if diff := cmp.Diff(want, run(New(doors, Options{}), tt.steps)); diff != "" {
				t.Errorf("without Explain (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExplainEvictionsAndRefusals(t *testing.T) {
	d := mkDoor("d", "7000,8000,9000", 5)
	m := New([]*config.Door{d}, Options{MaxAttempts: 2, Explain: true})
	got := explain(m, []step{{0, "198.18.0.1 7000", 0, ""}, {0, "198.18.0.2 7000", 0, ""}, {1, "198.18.0.3 7000", 0, ""}})
	want := []string{"198.18.0.1: d: Stage 1", "198.18.0.2: d: Stage 1", "198.18.0.3: d: Stage 1",
		"198.18.0.1: d: attempt ended at stage 1: evicted, MaxAttempts attempts in progress, the oldest at stage 1 made room"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("eviction (-want +got):\n%s", diff)
	}
	got = explain(m, []step{{2, "198.18.0.2 8000", 0, ""}, {2, "198.18.0.3 8000", 0, ""}, {3, "198.18.0.4 7000", 0, ""}})
	want = []string{"198.18.0.2: d: Stage 2", "198.18.0.3: d: Stage 2", "198.18.0.4: d: Stage 1",
		"198.18.0.4: d: 7000/tcp ignored: no room for a new attempt, MaxAttempts attempts in progress and none at stage 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refusal (-want +got):\n%s", diff)
	}
	if st := m.Stats(); st.Evicted != 1 || st.Refused != 1 {
		t.Errorf("stats %+v, want 1 evicted and 1 refused", st)
	}
}

// The explanations carry what a JSON line or a test needs without
// parsing the text.
func TestExplanationFields(t *testing.T) {
	m := New([]*config.Door{mkDoor("openSSH", "7000,8000", 5)}, Options{Explain: true})
	acts := actionsOf(m, []step{{0, "198.18.0.2 7000", 0, ""}, {1, "198.18.0.2 7001:udp", 0, ""}})
	got := acts[len(acts)-1]
	got.Door = nil
	want := Action{Kind: Ended, Why: WrongKnock, Got: wire.Knock{Port: 7001, Proto: wire.UDP}, Src: netip.MustParseAddr("198.18.0.2"), Stage: 1, Time: t0.Add(time.Second)}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Attempts that end because a one-time sequence was used, or because a
// reload changed their door, are explained too.
func TestExplainSpentAndReloaded(t *testing.T) {
	d := mkDoor("otp", "6110,6120", 5)
	d.OneTimeFile = "sequences.seq"
	f := &fakeOneTime{next: []string{"6210,6220"}}
	m := New([]*config.Door{d}, Options{OneTime: f.use, Explain: true})
	got := explain(m, []step{{0, "198.51.100.8 6110", 0, ""}, {0.1, "198.51.100.7 6110", 0, ""}, {1, "198.51.100.7 6120", 0, ""}})
	want := []string{"198.51.100.8: otp: Stage 1", "198.51.100.7: otp: Stage 1", "198.51.100.7: otp: Stage 2", "198.51.100.7: otp: OPEN SESAME",
		"198.51.100.8: otp: attempt ended at stage 1: the one-time sequence was used, the door moved on to the next",
		"new sequence for door otp: 6210:tcp,6220:tcp"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("one-time (-want +got):\n%s", diff)
	}

	m = New([]*config.Door{mkDoor("keep", "7000,8000,9000", 5), mkDoor("change", "7000,8000,9999", 5)}, Options{Explain: true})
	explain(m, []step{{0, "198.51.100.7 7000", 0, ""}})
	m.Reload([]*config.Door{mkDoor("change", "7000,8000,9998", 5), mkDoor("keep", "7000,8000,9000", 5)})
	var lines []string
	for _, a := range m.TakeEnded(nil) {
		lines = append(lines, a.String())
	}
	want = []string{"198.51.100.7: change: attempt ended at stage 1: the door changed in a reload"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("reload (-want +got):\n%s", diff)
	}
	if n := len(m.TakeEnded(nil)); n != 0 {
		t.Errorf("TakeEnded kept %d actions", n)
	}
}

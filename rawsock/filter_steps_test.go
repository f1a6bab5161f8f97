package rawsock

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/match"
	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
)

// TestProgramFollowsSteps builds the filter from a time-derived door's
// steps, as the daemon does whenever they move, and runs it in bpf.VM:
// the first ports of the accepted steps pass, those of expired steps do
// not.
func TestProgramFollowsSteps(t *testing.T) {
	key, err := seqderive.DecodeSecret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	if err != nil {
		t.Fatal(err)
	}
	d := &config.Door{Name: "totp", SecretFile: "/secret", Secret: key, Derive: seqderive.Defaults(),
		SeqTimeout: 10 * time.Second, Flags: wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}}
	tv := time.Unix(1767225600, 0) // step cv of the README's vector
	const cv = 58907520
	now := tv.Add(5 * time.Second)
	m := match.New([]*config.Door{d}, match.Options{Now: func() time.Time { return now }})
	first := func(c uint64) uint16 { return d.Derived(c).Sequence[0].Port }
	prog := func() []bpf.Instruction {
		p, err := program(capture.NewSpec(m.Doors(), nil, false), false)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(when string, p []bpf.Instruction, pass, drop []uint64) {
		t.Helper()
		var passPorts []uint16
		for _, c := range pass {
			passPorts = append(passPorts, first(c))
			if !runFilter(t, p, ip4(a4, b4, protoTCP, 0, nil, tcpHdr(40000, first(c), wire.SYN))) {
				t.Errorf("%s: the first port of step %d (%d) does not pass", when, c, first(c))
			}
			if !runFilter(t, p, ip6(a6, b6, protoTCP, nil, tcpHdr(40000, first(c), wire.SYN))) {
				t.Errorf("%s: the first port of step %d (%d) does not pass over IPv6", when, c, first(c))
			}
		}
		for _, c := range drop {
			port := first(c)
			if slices.ContainsFunc(m.Doors(), func(dd *config.Door) bool {
				return slices.Contains(dd.Sequence, wire.Knock{Port: port, Proto: wire.TCP})
			}) {
				t.Fatalf("%s: step %d's first port %d is in an accepted sequence too: choose other steps", when, c, port)
			}
			if runFilter(t, p, ip4(a4, b4, protoTCP, 0, nil, tcpHdr(40000, port, wire.SYN))) {
				t.Errorf("%s: the first port of expired step %d (%d) passes", when, c, port)
			}
		}
	}
	check("at step cv", prog(), []uint64{cv - 1, cv, cv + 1}, []uint64{cv - 3, cv - 2, cv + 2, cv + 3})

	// The next step: cv-1 retires (attempts on it may finish), cv+2
	// joins.
	if acts := m.Expire(tv.Add(30*time.Second), nil); len(acts) != 1 || acts[0].Kind != match.NewSteps {
		t.Fatalf("Expire at the next step = %v", acts)
	}
	check("at step cv+1", prog(), []uint64{cv - 1, cv, cv + 1, cv + 2}, []uint64{cv - 2, cv + 3})
	// Once its attempts have had their Seq_Timeout, cv-1 is gone.
	m.Expire(tv.Add(40*time.Second), nil)
	check("after the retiring step", prog(), []uint64{cv, cv + 1, cv + 2}, []uint64{cv - 1, cv - 2, cv + 3})
	// Much later: the old steps retire, then nothing of them is left.
	m.Expire(tv.Add(time.Hour), nil)
	m.Expire(tv.Add(time.Hour+10*time.Second), nil)
	later := seqderive.Counter(tv.Add(time.Hour), 30*time.Second)
	check("an hour later", prog(), []uint64{later - 1, later, later + 1}, []uint64{cv, cv + 1, cv + 2})
}

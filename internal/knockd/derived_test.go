package knockd

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
)

// TestDerivedStepRecordedBeforeTheCommand runs a time-derived door on the
// fake source whose start command copies the used-steps record: the step
// is in it when the command runs. The same sequence again is a replay.
func TestDerivedStepRecordedBeforeTheCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	seen := filepath.Join(dir, "seen")
	f := runFakeWith(t, fmt.Sprintf("# (no fixed port: %%[1]d)\n[d]\nSequence_Secret = %s\nSequence_Proto = udp\nStart_Command = cat %s/steps-* > %s\n", secret, state, seen),
		Options{StateDir: state})

	key, _ := seqderive.DecodeSecret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	p := seqderive.Defaults()
	p.Proto = wire.UDP
	c := seqderive.Counter(time.Now(), p.Step)
	a := netip.MustParseAddr("198.18.0.3")
	send := func() {
		for _, k := range seqderive.Sequence(key, c, p) {
			f.knocks(int(k.Port), a)
		}
	}
	send()
	f.waitOut("198.18.0.3: d: OPEN SESAME", &f.stdout)
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(seen)
		if strings.Contains(string(b), fmt.Sprintf("\n%d\n", c)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the start command saw the record %q, want step %d in it:\n%s", b, c, f.stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	send()
	f.waitOut(fmt.Sprintf("198.18.0.3: d: used sequence replayed (step %d): nothing opened", c), &f.stdout)
	if n := strings.Count(f.stdout.String(), "OPEN SESAME"); n != 1 {
		t.Errorf("%d openings, want 1:\n%s", n, f.stdout.String())
	}
}

// TestDerivedReloadMovesTheCapture reloads a time-derived door with
// another port range: the source watches the new range's ports at once.
func TestDerivedReloadMovesTheCapture(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := "# (no fixed port: %%[1]d)\n[d]\nSequence_Secret = " + secret + "\nSequence_Ports = %s\nStart_Command = true\n"
	f := runFakeWith(t, fmt.Sprintf(conf, "20000-26999"), Options{StateDir: filepath.Join(dir, "state")})
	inRange := func(low, high uint16) bool {
		ps := f.ports()
		for _, p := range ps {
			if p < low || p > high {
				return false
			}
		}
		return len(ps) >= 3
	}
	if !inRange(20000, 26999) {
		t.Fatalf("the source watches %v, want ports of 20000-26999", f.ports())
	}
	f.sighup(fmt.Sprintf(conf, "40000-40999"))
	if !inRange(40000, 40999) {
		t.Fatalf("after the reload the source watches %v, want ports of 40000-40999:\n%s", f.ports(), f.stderr.String())
	}
}

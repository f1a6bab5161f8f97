package knockd

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/capture/capturetest"
	"github.com/knock-go/knock/wire"
)

// fakeDaemon is a daemon run in the test's process on a fake source: the
// test feeds it knocks, no socket involved.
type fakeDaemon struct {
	*testDaemon
	src *capturetest.Source
}

func runFake(t *testing.T, conf string) *fakeDaemon {
	t.Helper()
	return runFakeWith(t, conf, Options{})
}

// runFakeWith is runFake with options.
func runFakeWith(t *testing.T, conf string, opts Options) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{}
	opts.NewSource = func(spec capture.Spec, _ func(string, ...any)) (capture.Source, error) {
		f.src = capturetest.NewSource(spec)
		return f.src, nil
	}
	f.testDaemon = runDaemon(t, conf, opts)
	return f
}

// knocks feeds one UDP knock on port from each of srcs.
func (f *fakeDaemon) knocks(port int, srcs ...netip.Addr) {
	f.t.Helper()
	evs := make([]capture.Event, len(srcs))
	for i, src := range srcs {
		evs[i] = capture.Event{Time: time.Now(), Src: src, Dst: netip.MustParseAddr("198.18.0.1"), Port: uint16(port), Proto: wire.UDP}
	}
	if !f.src.Feed(evs...) {
		f.t.Fatal("the fake source is closed")
	}
}

// ports returns the ports the source watches now.
func (f *fakeDaemon) ports() []uint16 {
	spec, _ := f.src.Spec()
	var ps []uint16
	for _, p := range spec.Ports {
		ps = append(ps, p.Port)
	}
	return ps
}

func TestFakeSourceReload(t *testing.T) {
	t.Parallel()
	f := runFake(t, door)
	a := netip.MustParseAddr("198.18.0.3")
	f.knocks(f.port(), a)
	f.waitOut(stage1(a.String()), &f.stdout)

	// A good file: the source follows the new port, and knocks on it
	// count.
	newPort := f.port() + 1
	if newPort > 65535 {
		newPort = f.port() - 1
	}
	// (The comment uses write's arguments, which fmt wants used.)
	moved := "# was %[1]d in %[2]s\n" + strings.ReplaceAll(door, "%[1]d", fmt.Sprint(newPort))
	f.sighup(moved)
	if got := f.ports(); len(got) != 1 || int(got[0]) != newPort {
		t.Fatalf("after the reload the source watches %v, want [%d]", got, newPort)
	}
	b := netip.MustParseAddr("198.18.0.4")
	f.knocks(newPort, b)
	f.waitOut(stage1(b.String()), &f.stdout)

	// A bad file: logged, and the running configuration (and the
	// source's ports) stay.
	_, updates := f.src.Spec()
	f.sighup("[d]\n\tsequence = nonsense # %[1]d %[2]s\n")
	f.waitOut("keeping the running configuration", &f.stderr)
	if got, n := f.src.Spec(); n != updates || len(got.Ports) != 1 || int(got.Ports[0].Port) != newPort {
		t.Errorf("a bad file changed the source: %d updates (was %d), ports %v", n, updates, f.ports())
	}
	c := netip.MustParseAddr("198.18.0.5")
	f.knocks(newPort, c)
	f.waitOut(stage1(c.String()), &f.stdout)
}

func TestFakeSourceShutdownRunsPendingStops(t *testing.T) {
	t.Parallel()
	f := runFake(t, `
[d]
	sequence = %[1]d:udp,%[1]d:udp
	seq_timeout = 60
	start_command = echo open >> %[2]s/cmds
	cmd_timeout = 3600
	stop_command = echo stop >> %[2]s/cmds
`)
	a := netip.MustParseAddr("198.18.0.3")
	f.knocks(f.port(), a, a)
	f.waitOut("OPEN SESAME", &f.stdout)
	cmds := filepath.Join(f.dir, "cmds")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(cmds); string(b) == "open\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the start command did not run")
		}
	}
	if err := f.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b, _ := os.ReadFile(cmds); string(b) != "open\nstop\n" {
		t.Errorf("commands run = %q, want the stop command run at shutdown", b)
	}
}

func TestFakeSourceFloodSummary(t *testing.T) {
	t.Parallel()
	f := runFake(t, door)
	// 1,000 first knocks in one go: the first linesPerSecond are logged,
	// the rest summarised once the second is over.
	srcs := make([]netip.Addr, 1000)
	for i := range srcs {
		srcs[i] = netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(1 + i%250)})
	}
	f.knocks(f.port(), srcs...)
	f.waitOut("stage messages suppressed in the last second", &f.stdout)
	if n := strings.Count(f.stdout.String(), ": d: Stage 1"); n < linesPerSecond || n >= len(srcs) {
		t.Errorf("%d stage lines logged of %d knocks, want at least %d and not all", n, len(srcs), linesPerSecond)
	}
}

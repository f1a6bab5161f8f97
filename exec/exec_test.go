package exec

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/klog/klogtest"
)

// waitFor polls cond for up to 10 s: commands are real processes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// records lists the files of a state directory other than its lock.
func records(dir string) []string {
	var names []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != lockName {
			names = append(names, e.Name())
		}
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartThenStopAfterTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	lb := &klogtest.Lines{}
	r, err := New(Options{Logf: lb.Logf, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	d := &config.Door{Name: "openSSH", CmdTimeout: 300 * time.Millisecond,
		StartCommand: "echo open %IP% >> " + out, StopCommand: "echo close %IP% >> " + out}
	begin := time.Now()
	r.Open(d, netip.MustParseAddr("198.51.100.7"), "198.51.100.7", begin)
	waitFor(t, "stop command", func() bool { return strings.Contains(readFile(t, out), "close") })
	if el := time.Since(begin); el < 300*time.Millisecond {
		t.Errorf("stop ran after %v, before Cmd_Timeout", el)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("open 198.51.100.7\nclose 198.51.100.7\n", readFile(t, out)); diff != "" {
		t.Errorf("commands run (-want +got):\n%s", diff)
	}
	want := []string{
		"openSSH: running command: echo open 198.51.100.7 >> " + out,
		"198.51.100.7: openSSH: command timeout",
		"openSSH: running command: echo close 198.51.100.7 >> " + out,
	}
	if diff := cmp.Diff(want, lb.Get()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if left := records(filepath.Join(dir, "state")); len(left) != 0 {
		t.Errorf("state files left: %v", left)
	}
}

func TestIPv6CommandsAndFallback(t *testing.T) {
	t.Parallel()
	d := &config.Door{StartCommand: "open4 %IP%", StopCommand: "close4 %IP%", StartCommand6: "open6 %IP% %IP%"}
	for _, tt := range []struct {
		src, start, stop string
	}{
		{"198.51.100.7", "open4 198.51.100.7", "close4 198.51.100.7"},
		{"2001:db8::7", "open6 2001:db8::7 2001:db8::7", "close4 2001:db8::7"},
		{"::ffff:198.51.100.7", "open4 198.51.100.7", "close4 198.51.100.7"},
	} {
		start, stop := d.Commands(netip.MustParseAddr(tt.src))
		if start != tt.start || stop != tt.stop {
			t.Errorf("%s: got %q, %q; want %q, %q", tt.src, start, stop, tt.start, tt.stop)
		}
	}
}

func TestNonZeroStatusIsLogged(t *testing.T) {
	t.Parallel()
	lb := &klogtest.Lines{}
	r, _ := New(Options{Logf: lb.Logf})
	r.Open(&config.Door{Name: "d", StartCommand: "exit 3"}, netip.MustParseAddr("198.51.100.7"), "198.51.100.7", time.Now())
	r.Close(context.Background())
	want := []string{"d: running command: exit 3", "d: command returned non-zero status code (3)"}
	if diff := cmp.Diff(want, lb.Get()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if st := r.Stats(); st.Failed != 1 {
		t.Errorf("stats %+v, want 1 failed", st)
	}
}

func TestSlowCommandDoesNotBlock(t *testing.T) {
	t.Parallel()
	r, _ := New(Options{})
	d := &config.Door{Name: "d", StartCommand: "sleep 1"}
	begin := time.Now()
	for i := 0; i < 5; i++ {
		r.Open(d, netip.MustParseAddr("198.51.100.7"), "x", time.Now())
	}
	if el := time.Since(begin); el > 500*time.Millisecond {
		t.Errorf("Open blocked for %v", el)
	}
	r.Close(context.Background())
}

// TestConcurrencyBound runs many commands that each record when they
// start and end, and checks that never more than MaxRunning overlapped
// and that none was lost.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r, _ := New(Options{MaxRunning: 3, MaxQueued: 100})
	d := &config.Door{Name: "d", StartCommand: "echo + >> " + out + "; sleep 0.05; echo - >> " + out}
	for i := 0; i < 30; i++ {
		r.Open(d, netip.MustParseAddr("198.51.100.7"), "x", time.Now())
	}
	waitFor(t, "every command", func() bool { st := r.Stats(); return st.Started == 30 && st.Running == 0 })
	r.Close(context.Background())
	cur, peak, n := 0, 0, 0
	for _, l := range strings.Fields(readFile(t, out)) {
		if l == "+" {
			cur++
			n++
		} else {
			cur--
		}
		peak = max(peak, cur)
	}
	if peak > 3 || n != 30 {
		t.Errorf("peak %d commands at once (bound 3), %d started (want 30)", peak, n)
	}
}

func TestQueueFullIsCountedAndLogged(t *testing.T) {
	t.Parallel()
	lb := &klogtest.Lines{}
	r, _ := New(Options{Logf: lb.Logf, MaxRunning: 1, MaxQueued: 2})
	d := &config.Door{Name: "d", StartCommand: "sleep 0.3"}
	for i := 0; i < 10; i++ {
		r.Open(d, netip.MustParseAddr("198.51.100.7"), "x", time.Now())
	}
	waitFor(t, "the queue to drain", func() bool { st := r.Stats(); return st.Waiting == 0 && st.Running == 0 })
	r.Close(context.Background())
	st := r.Stats()
	if st.Started+st.Rejected != 10 || st.Rejected == 0 {
		t.Errorf("stats %+v: want every command started or rejected, some rejected", st)
	}
	// One summary line, not one per refusal.
	var summaries []string
	for _, l := range lb.Get() {
		if strings.Contains(l, "refused") {
			summaries = append(summaries, l)
		}
	}
	want := []string{fmt.Sprintf("d: %d start commands refused in the last second: queue full", st.Rejected)}
	if diff := cmp.Diff(want, summaries); diff != "" {
		t.Errorf("refusals logged (-want +got):\n%s", diff)
	}
}

func TestCloseRunsPendingStopsNow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r, _ := New(Options{StateDir: dir + "/state"})
	d := &config.Door{Name: "d", CmdTimeout: time.Hour, StartCommand: "echo open >> " + out, StopCommand: "echo close >> " + out}
	r.Open(d, netip.MustParseAddr("198.51.100.7"), "x", time.Now())
	begin := time.Now()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(begin); el > 5*time.Second {
		t.Errorf("Close took %v", el)
	}
	if got := readFile(t, out); got != "open\nclose\n" {
		t.Errorf("commands run: %q", got)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	out := filepath.Join(dir, "out")
	// What a runner that died left: an overdue stop, one due soon, and a
	// record it never finished writing (its start command never ran).
	now := time.Now()
	os.MkdirAll(state, 0o700)
	for name, rec := range map[string]record{
		"1-1-1.stop": {Door: "overdue", Label: "198.51.100.7", Cmd: "echo overdue >> " + out, Due: now.Add(-time.Hour)},
		"1-1-2.stop": {Door: "later", Label: "198.51.100.8", Cmd: "echo later >> " + out, Due: now.Add(400 * time.Millisecond)},
	} {
		writeRecord(t, filepath.Join(state, name), rec)
	}
	os.WriteFile(filepath.Join(state, "1-1-3.stop.tmp"), []byte("{"), 0o600)

	lb := &klogtest.Lines{}
	r2, _ := New(Options{StateDir: state, Logf: lb.Logf})
	n, err := r2.Recover()
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want 2", n, err)
	}
	waitFor(t, "overdue stop", func() bool { return readFile(t, out) == "overdue\n" })
	waitFor(t, "later stop", func() bool { return readFile(t, out) == "overdue\nlater\n" })
	if time.Since(now) < 400*time.Millisecond {
		t.Error("the stop that was not due yet ran early")
	}
	r2.Close(context.Background())
	if left := records(state); len(left) != 0 {
		t.Errorf("state files left: %v", left)
	}
}

// TestRecoverWaitsForAStopStillRunning stands in for a daemon killed
// while its stop command ran: the command holds the lock on its record
// and marks it; the restarted runner must wait, see the mark and not run
// the command again.
func TestRecoverWaitsForAStopStillRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	rec := fmt.Sprintf(`{"door":"d","label":"x","cmd":"echo again >> %s","due":"2000-01-01T00:00:00Z"}`+"\n", out)
	path := filepath.Join(dir, "1-1-1.stop")
	if err := os.WriteFile(path, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r, _ := New(Options{StateDir: dir})
	if _, err := r.Recover(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	f.WriteString(startedMarker)
	f.Close() // releases the lock, as the command's exit would
	r.Close(context.Background())
	if got := readFile(t, out); got != "" {
		t.Errorf("stop command ran again: %q", got)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("record not removed: %v", err)
	}
}

func TestUnwritableStateDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root can write anywhere; the check is exercised as a normal user")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	_, err := New(Options{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("err = %v, want not writable", err)
	}
}

// TestStopRunByAnotherProcessIsNotRunAgain stands in for two daemons
// sharing a state directory: both recover a record; when the other one
// has run the stop command (the record carries the mark), this one must
// not run it again at the due time.
func TestStopRunByAnotherProcessIsNotRunAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	path := filepath.Join(dir, "1-1-1.stop")
	writeRecord(t, path, record{Door: "d", Label: "x", Cmd: "echo again >> " + out, Due: time.Now().Add(300 * time.Millisecond)})
	r, _ := New(Options{StateDir: dir})
	if n, err := r.Recover(); n != 1 || err != nil {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	waitFor(t, "the record to be scheduled", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for p := range r.pending {
			return p.timer != nil
		}
		return false
	})
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(startedMarker)
	f.Close()
	waitFor(t, "the record to be dropped", func() bool { _, err := os.Stat(path); return os.IsNotExist(err) })
	r.Close(context.Background())
	if got := readFile(t, out); got != "" {
		t.Errorf("stop command ran again: %q", got)
	}
}

// TestStateIsLockedPerInstance stands in for a second daemon started on
// the state of a running one: it must refuse to start, naming the pid,
// and never touch the first one's records.
func TestStateIsLockedPerInstance(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	r1, err := New(Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{StateDir: state})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by another knockd (pid %d)", os.Getpid())) ||
		!strings.Contains(err.Error(), "--state-dir or StateDir") {
		t.Fatalf("second runner on the same state: err = %v", err)
	}
	if err := r1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2, err := New(Options{StateDir: state})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	r2.Close(context.Background())
}

// TestStateIfPresent: without stop commands no state directory is made,
// and one that cannot be used is not an error.
func TestStateIfPresent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "a", "state")
	r, err := New(Options{StateDir: state, StateIfPresent: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Close(context.Background())
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("state directory created: %v", err)
	}
	// In use by another: a warning, not a failure.
	r1, _ := New(Options{StateDir: dir})
	defer r1.Close(context.Background())
	lb := &klogtest.Lines{}
	r2, err := New(Options{StateDir: dir, StateIfPresent: true, Logf: lb.Logf})
	if err != nil {
		t.Fatal(err)
	}
	r2.Close(context.Background())
	if l := lb.Get(); len(l) != 1 || !strings.Contains(l[0], "warning: not using state directory") {
		t.Errorf("log %q", l)
	}
}

package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/klog/klogtest"
)

var knocker = netip.MustParseAddr("198.51.100.7")

// TestStateDirWritableByOthersIsRefused: a 1777 directory (a /tmp path)
// would let anyone plant a record for root to run.
func TestStateDirWritableByOthersIsRefused(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o777 | os.ModeSticky, 0o770, 0o702} {
		dir := filepath.Join(t.TempDir(), "state")
		os.Mkdir(dir, 0o700)
		os.Chmod(dir, mode)
		_, err := New(Options{StateDir: dir})
		if err == nil || !strings.Contains(err.Error(), "writable by group or others") || !strings.Contains(err.Error(), "chmod go-w "+dir) {
			t.Errorf("mode %v: err = %v, want a refusal saying chmod go-w", mode, err)
		}
	}
	if os.Geteuid() == 0 {
		dir := filepath.Join(t.TempDir(), "state")
		os.Mkdir(dir, 0o700)
		os.Chown(dir, 65534, 65534)
		_, err := New(Options{StateDir: dir})
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "chown 0 "+dir) {
			t.Errorf("directory of uid 65534: err = %v, want a refusal saying chown", err)
		}
	}
}

// writeRecord writes a record as a dead run would have left it.
func writeRecord(t *testing.T, path string, rec record) {
	t.Helper()
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPlantedRecordOfAnotherUserIsIgnored: a record not owned by the
// daemon's user is never run.
func TestPlantedRecordOfAnotherUserIsIgnored(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot make a file of another user")
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	out := filepath.Join(dir, "out")
	path := filepath.Join(state, "1-1-1.stop")
	writeRecord(t, path, record{Door: "d", Label: "x", Cmd: "echo planted >> " + out, Due: time.Now().Add(-time.Hour)})
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	lb := &klogtest.Lines{}
	r, err := New(Options{StateDir: state, Logf: lb.Logf})
	if err != nil {
		t.Fatal(err)
	}
	r.Recover()
	r.Close(context.Background())
	if got := readFile(t, out); got != "" {
		t.Errorf("the planted record ran: %q", got)
	}
	want := "ignoring a pending stop command: untrusted record: " + path + " is owned by uid 65534, not by this daemon's user (uid 0)"
	if l := lb.Get(); len(l) != 1 || l[0] != want {
		t.Errorf("log %q, want %q", l, want)
	}
}

// TestSymlinkRecordIsNotFollowed: a symlink put in place of a record,
// at start or while its opening is live, is never read or written
// through: the file it points at stays as it was.
func TestSymlinkRecordIsNotFollowed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	out := filepath.Join(dir, "out")
	// At start: a symlink to a record-looking file elsewhere.
	victim := filepath.Join(dir, "victim")
	writeRecord(t, victim, record{Door: "d", Label: "x", Cmd: "echo planted >> " + out, Due: time.Now().Add(-time.Hour)})
	before := readFile(t, victim)
	os.Symlink(victim, filepath.Join(state, "1-1-1.stop"))
	lb := &klogtest.Lines{}
	r, err := New(Options{StateDir: state, Logf: lb.Logf})
	if err != nil {
		t.Fatal(err)
	}
	r.Recover()
	// While live: the record of an opening swapped for a symlink.
	d := &config.Door{Name: "live", CmdTimeout: 300 * time.Millisecond, StartCommand: "echo open >> " + out, StopCommand: "echo close >> " + out}
	r.Open(d, knocker, "x", time.Now())
	var rec string
	waitFor(t, "the record", func() bool {
		for _, n := range records(state) {
			if n != "1-1-1.stop" && strings.HasSuffix(n, ".stop") {
				rec = filepath.Join(state, n)
				return true
			}
		}
		return false
	})
	live := filepath.Join(dir, "live-victim")
	writeFile := func(p, s string) { os.WriteFile(p, []byte(s), 0o600) }
	writeFile(live, "precious\n")
	os.Remove(rec)
	os.Symlink(live, rec)
	waitFor(t, "the stop command", func() bool { return strings.Contains(readFile(t, out), "close") })
	r.Close(context.Background())
	if got := readFile(t, out); got != "open\nclose\n" {
		t.Errorf("commands run: %q", got)
	}
	if got := readFile(t, victim); got != before {
		t.Errorf("the file behind the planted symlink changed: %q", got)
	}
	if got := readFile(t, live); got != "precious\n" {
		t.Errorf("the file behind the swapped-in symlink changed: %q", got)
	}
	logged := strings.Join(lb.Get(), "\n")
	if !strings.Contains(logged, "ignoring a pending stop command: untrusted record: "+filepath.Join(state, "1-1-1.stop")+" is a symbolic link") {
		t.Errorf("the planted symlink was not logged:\n%s", logged)
	}
}

// TestDoorsTakeTurns: with one slot busy and one door's queue long,
// another door's start command runs next, not after the backlog; and
// queued or refused openings cost no disk write.
func TestDoorsTakeTurns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	out := filepath.Join(dir, "out")
	r, err := New(Options{StateDir: state, MaxRunning: 1, MaxQueued: 20})
	if err != nil {
		t.Fatal(err)
	}
	storm := &config.Door{Name: "storm", CmdTimeout: time.Hour, StartCommand: "echo storm >> " + out + "; sleep 0.05", StopCommand: "true"}
	other := &config.Door{Name: "other", CmdTimeout: time.Hour, StartCommand: "echo other >> " + out, StopCommand: "true"}
	for i := 0; i < 30; i++ {
		r.Open(storm, knocker, "x", time.Now())
	}
	// One running, 20 queued, 9 refused: one record on disk.
	if n := len(records(state)); n > 1 {
		t.Errorf("%d records on disk with one start command running: queued or refused openings were written", n)
	}
	r.Open(other, knocker, "x", time.Now())
	waitFor(t, "the other door's command", func() bool { return strings.Contains(readFile(t, out), "other") })
	// At most the storm's command running then, and the one whose turn
	// came before the other door's.
	lines := strings.Fields(readFile(t, out))
	before := 0
	for lines[before] != "other" {
		before++
	}
	if before > 2 {
		t.Errorf("the other door's command ran after %d of the storm's: %v", before, lines)
	}
	r.Close(context.Background())
}

// TestStopCommandsHaveTheirOwnSlots: start commands filling every slot
// do not delay a stop command that is due.
func TestStopCommandsHaveTheirOwnSlots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r, _ := New(Options{MaxRunning: 2, CommandLimit: time.Minute})
	hung := &config.Door{Name: "hung", StartCommand: "sleep 30"}
	r.Open(hung, knocker, "x", time.Now())
	r.Open(hung, knocker, "x", time.Now())
	waitFor(t, "both slots busy", func() bool { return r.Stats().Running == 2 })
	d := &config.Door{Name: "d", CmdTimeout: 100 * time.Millisecond, StartCommand: "true", StopCommand: "echo stop >> " + out}
	r.mu.Lock()
	// A stop command due now, its start command long done.
	p := &pending{rec: record{Door: d.Name, Label: "x", Cmd: d.StopCommand, Due: time.Now()}, startDone: make(chan struct{})}
	close(p.startDone)
	r.schedule(p)
	r.mu.Unlock()
	waitFor(t, "the stop command", func() bool { return readFile(t, out) == "stop\n" })

	// Hung stop commands of one door filling every stop slot do not
	// hold up another door's.
	due := func(door, cmd string) {
		r.mu.Lock()
		p := &pending{rec: record{Door: door, Label: "x", Cmd: cmd, Due: time.Now()}, startDone: make(chan struct{})}
		close(p.startDone)
		r.schedule(p)
		r.mu.Unlock()
	}
	due("hung", "sleep 30")
	due("hung", "sleep 30")
	waitFor(t, "the stop slots busy", func() bool { return r.Stats().Running == 4 })
	due("d", "echo stop2 >> "+out)
	waitFor(t, "the other door's stop command", func() bool { return readFile(t, out) == "stop\nstop2\n" })
	r.Close(context.Background())
}

// TestCommandLimitKillsTheProcessGroup: a command past CommandLimit is
// killed with what it started, and logged; a stop command as such.
func TestCommandLimitKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	lb := &klogtest.Lines{}
	r, _ := New(Options{Logf: lb.Logf, CommandLimit: 300 * time.Millisecond})
	d := &config.Door{Name: "d", CmdTimeout: 100 * time.Millisecond,
		StartCommand: "sleep 30 & echo $! > " + pidFile + "; wait",
		StopCommand:  "sleep 30"}
	r.Open(d, knocker, "x", time.Now())
	waitFor(t, "the stop command to be killed", func() bool { return r.Stats().Killed == 2 })
	r.Close(context.Background())
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if pid <= 0 {
		t.Fatal("no pid written")
	}
	waitFor(t, "the start command's child to die", func() bool { return !alive(pid) })
	logged := strings.Join(lb.Get(), "\n")
	for _, want := range []string{
		"d: start command still running after 0s, killed: sleep 30 & echo",
		"d: stop command still running after 0s, killed; what it was to close may still be open: sleep 30",
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %q:\n%s", want, logged)
		}
	}
}

// alive reports whether pid runs; a zombie (killed, not yet reaped by
// whoever adopted it) does not.
func alive(pid int) bool {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		_, rest, _ := strings.Cut(string(b), ") ")
		return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
	}
	return syscall.Kill(pid, 0) == nil
}

// TestCloseDoesNotWaitForHungCommands: Close kills what still runs
// closeGrace after it began, and still runs the pending stop commands.
func TestCloseDoesNotWaitForHungCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r, _ := New(Options{StateDir: filepath.Join(dir, "state"), MaxRunning: 1})
	hung := &config.Door{Name: "hung", CmdTimeout: time.Hour, StartCommand: "true", StopCommand: "sleep 120"}
	d := &config.Door{Name: "d", CmdTimeout: time.Hour, StartCommand: "true", StopCommand: "echo stop >> " + out}
	r.Open(hung, knocker, "x", time.Now())
	r.Open(d, knocker, "x", time.Now())
	waitFor(t, "both opened", func() bool { return r.Stats().Pending == 2 })
	begin := time.Now()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A bound, not a speed test: before, Close waited for the hung
	// command, two minutes.
	el := time.Since(begin)
	t.Logf("Close with a hung stop command took %v", el.Round(time.Millisecond))
	if el > 60*time.Second {
		t.Errorf("Close took %v", el)
	}
	if got := readFile(t, out); got != "stop\n" {
		t.Errorf("stop commands run: %q", got)
	}
	if st := r.Stats(); st.Killed != 1 {
		t.Errorf("stats %+v, want 1 killed", st)
	}
}

// TestCloseDropsQueuedStartCommands: at shutdown a backlog of start
// commands is not run, and is counted in the log.
func TestCloseDropsQueuedStartCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	lb := &klogtest.Lines{}
	r, _ := New(Options{Logf: lb.Logf, MaxRunning: 1})
	d := &config.Door{Name: "d", StartCommand: "echo start >> " + out + "; sleep 0.3"}
	for i := 0; i < 11; i++ {
		r.Open(d, knocker, "x", time.Now())
	}
	waitFor(t, "the first command", func() bool { return r.Stats().Running == 1 })
	r.Close(context.Background())
	if got := readFile(t, out); got != "start\n" {
		t.Errorf("start commands run: %q", got)
	}
	logged := strings.Join(lb.Get(), "\n")
	if !strings.Contains(logged, "10 start commands not run: shutting down") {
		t.Errorf("log:\n%s", logged)
	}
	if st := r.Stats(); st.Dropped != 10 {
		t.Errorf("stats %+v, want 10 dropped", st)
	}
}

// TestSetLimits: a reload's MaxCommands takes effect on what waits, its
// CommandLimit on what starts next.
func TestSetLimits(t *testing.T) {
	t.Parallel()
	r, _ := New(Options{MaxRunning: 1})
	d := &config.Door{Name: "d", StartCommand: "sleep 5"}
	for i := 0; i < 3; i++ {
		r.Open(d, knocker, "x", time.Now())
	}
	waitFor(t, "one running", func() bool { return r.Stats().Running == 1 })
	r.SetLimits(3, 200*time.Millisecond)
	waitFor(t, "three running", func() bool { return r.Stats().Running == 3 })
	r.Open(&config.Door{Name: "e", StartCommand: "sleep 30"}, knocker, "x", time.Now())
	// The two started after the reload, and e's, are killed; the first
	// keeps the limit it started with.
	waitFor(t, "the commands under the new limit killed", func() bool { return r.Stats().Killed >= 3 })
	// A killed command is counted before it has been waited for.
	waitFor(t, "the killed commands reaped", func() bool { return r.Stats().Running <= 1 })
	if st := r.Stats(); st.Running != 1 || st.Killed != 3 {
		t.Errorf("stats %+v: want the first command still running", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Error(err)
	}
}

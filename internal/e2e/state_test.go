package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTwoInstancesKeepTheirOwnState runs two daemons with different
// configurations side by side on the default state location (systemd's
// $STATE_DIRECTORY, as a unit with StateDirectory= gives both): stopping
// the second must run its own pending stop command only, the first must
// run its own at its time, and no stop command may run twice. When both
// shared one directory, the second adopted the first's record as left
// over, and ran it early when it stopped.
func TestTwoInstancesKeepTheirOwnState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 2)
	events := filepath.Join(dir, "events")
	conf := func(name string, port, timeout int) string {
		path := filepath.Join(dir, name+".conf")
		writeFile(t, path, fmt.Sprintf(`[%[1]s]
	sequence = %[2]d:udp
	seq_timeout = 5
	start_command = echo "%[1]s start $(date +%%s.%%N)" >> %[3]s
	cmd_timeout = %[4]d
	stop_command = echo "%[1]s stop $(date +%%s.%%N)" >> %[3]s
`, name, port, events, timeout))
		return path
	}
	confA, confB := conf("a", p[0], 4), conf("b", p[1], 30)
	start := func(conf string) *daemon {
		cmd := exec.Command(knockdBin, "-c", conf, "-v", "--backend", "listener", "-i", "lo")
		cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+filepath.Join(dir, "state"))
		return launch(t, cmd, "listening on")
	}
	a := start(confA)
	udpKnock(t, "127.0.0.1", p[0])
	waitFile(t, events, "a start")
	b := start(confB)
	udpKnock(t, "127.0.0.1", p[1])
	waitFile(t, events, "b start")
	b.stop() // runs b's pending stop now, and only b's
	waitFile(t, events, "b stop")
	waitFile(t, events, "a stop")
	a.stop()
	if t.Failed() {
		return
	}
	times := map[string][]float64{}
	for _, l := range fileLines(events) {
		f := strings.Fields(l)
		ts, _ := strconv.ParseFloat(f[2], 64)
		times[f[0]+" "+f[1]] = append(times[f[0]+" "+f[1]], ts)
	}
	for _, k := range []string{"a start", "a stop", "b start", "b stop"} {
		if len(times[k]) != 1 {
			t.Errorf("%q ran %d times, want once:\n%s\nfirst instance:\n%s\nsecond:\n%s",
				k, len(times[k]), strings.Join(fileLines(events), "\n"), a.output(), b.output())
		}
	}
	if t.Failed() {
		return
	}
	// a's stop ran at its time, not when b stopped: at least Cmd_Timeout
	// (4 s, less a second of slack for the clocks of two shells) after
	// a's start.
	if open := times["a stop"][0] - times["a start"][0]; open < 3 {
		t.Errorf("a's opening was closed after %.1f s, before its Cmd_Timeout of 4 s (by the other instance?)\nsecond instance:\n%s", open, b.output())
	}
	if strings.Contains(b.output(), "left pending by an earlier run") {
		t.Errorf("the second instance adopted the first's records:\n%s", b.output())
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "state"))
	if len(ents) != 2 {
		t.Errorf("state directories %v, want one per configuration", ents)
	}
}

// TestSecondInstanceOnSameStateFails: the same state cannot be used by
// two live daemons; the second stops at start with a message naming the
// first's pid and what to do.
func TestSecondInstanceOnSameStateFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 2)
	state := filepath.Join(dir, "state")
	conf := func(name string, port int) string {
		path := filepath.Join(dir, name+".conf")
		writeFile(t, path, fmt.Sprintf("[%s]\n\tsequence = %d:udp\n\tcommand = true\n\tstop_command = true\n", name, port))
		return path
	}
	first := startDaemon(t, nil, "-c", conf("a", p[0]), "--backend", "listener", "-i", "lo", "-v", "--state-dir", state)
	out, code := runKnockd(t, "-c", conf("b", p[1]), "--backend", "listener", "-i", "lo", "-v", "--state-dir", state)
	want := fmt.Sprintf("is in use by another knockd (pid %d)", first.cmd.Process.Pid)
	if code == 0 || !strings.Contains(out, want) || !strings.Contains(out, "--state-dir or StateDir") {
		t.Errorf("second instance on the same state: exit %d, output:\n%s\nwant a message containing %q", code, out, want)
	}
}

// TestUnprivilegedWithoutStateDirectory runs, as an unprivileged user
// (uid 65534) whose HOME cannot be written or is unset, a configuration
// without stop commands: it needs no state, so it must start and open
// on the listener backend, and make no state directory.
func TestUnprivilegedWithoutStateDirectory(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot run the daemon as another user")
	}
	if _, err := user.LookupId("65534"); err != nil {
		t.Skip("no user 65534 to run as")
	}
	for _, home := range []string{"HOME=/root", "HOME=/", ""} {
		t.Run(strings.TrimPrefix(home, "HOME="), func(t *testing.T) {
			t.Parallel()
			dir := sharedTempDir(t)
			p := freePorts(t, 1)
			out := filepath.Join(dir, "commands")
			conf := filepath.Join(dir, "knockd.conf")
			writeFile(t, conf, fmt.Sprintf("[d]\n\tsequence = %d:udp\n\tcommand = echo open %%IP%% >> %s\n", p[0], out))
			cmd := exec.Command(knockdBin, "-c", conf, "-v", "--backend", "listener", "-i", "lo")
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
			if home != "" {
				cmd.Env = append(cmd.Env, home)
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			cmd.Dir = dir
			d := launch(t, cmd, "")
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(d.output(), "listening on") {
				if d.exited() || time.Now().After(deadline) {
					t.Fatalf("did not start as uid 65534 with %q:\n%s", home, d.output())
				}
				time.Sleep(20 * time.Millisecond)
			}
			udpKnock(t, "127.0.0.1", p[0])
			waitFile(t, out, "open 127.0.0.1\n")
		})
	}
}

// TestUnprivilegedStopCommandNeedsStateDirectory: with a stop command
// and nowhere to keep it, start-up stops and says how to give one.
func TestUnprivilegedStopCommandNeedsStateDirectory(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot run the daemon as another user")
	}
	if _, err := user.LookupId("65534"); err != nil {
		t.Skip("no user 65534 to run as")
	}
	for _, home := range []string{"HOME=/root", ""} {
		dir := sharedTempDir(t)
		p := freePorts(t, 1)
		conf := filepath.Join(dir, "knockd.conf")
		writeFile(t, conf, fmt.Sprintf("[d]\n\tsequence = %d:udp\n\tcommand = true\n\tstop_command = true\n", p[0]))
		cmd := exec.Command(knockdBin, "-c", conf, "--backend", "listener", "-i", "lo")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		if home != "" {
			cmd.Env = append(cmd.Env, home)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "StateDir in [options], --state-dir, or StateDirectory=") {
			t.Errorf("%q: err %v, output:\n%s", home, err, out)
		}
	}
}

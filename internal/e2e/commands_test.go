package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKillDuringStartCommand kills the daemon (SIGKILL) while a start
// command runs that adds its rule only at its end, after its
// Cmd_Timeout; the restarted daemon must run the overdue stop command
// only once the orphaned start command has ended, so that the rule does
// not remain.
func TestKillDuringStartCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 1)
	rule, events := filepath.Join(dir, "rule"), filepath.Join(dir, "events")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[d]
	sequence = %[1]d:udp
	start_command = sleep 2; touch %[2]s; echo "start-end $(date +%%s.%%N)" >> %[3]s
	cmd_timeout = 1
	stop_command = echo "stop $(date +%%s.%%N)" >> %[3]s; rm %[2]s
`, p[0], rule, events))
	args := []string{"-c", conf, "-v", "--backend", "listener", "-i", "lo", "--state-dir", filepath.Join(dir, "state")}
	d := startDaemon(t, nil, args...)
	udpKnock(t, "127.0.0.1", p[0])
	d.waitLine("d: running command: sleep 2")
	time.Sleep(500 * time.Millisecond)
	d.kill9()
	d2 := startDaemon(t, nil, args...)
	waitFile(t, events, "stop ")
	time.Sleep(300 * time.Millisecond)
	d2.stop()
	var startEnd, stop float64
	for _, l := range fileLines(events) {
		f := strings.Fields(l)
		ts, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "start-end":
			startEnd = ts
		case "stop":
			stop = ts
		}
	}
	if startEnd == 0 || stop < startEnd {
		t.Errorf("the stop command ran before the orphaned start command had ended (%.3f < %.3f):\n%s\n%s",
			stop, startEnd, strings.Join(fileLines(events), "\n"), d2.output())
	}
	if _, err := os.Stat(rule); err == nil {
		t.Errorf("the rule remained after the stop command:\n%s", d2.output())
	}
	if !t.Failed() {
		t.Logf("stop ran %.0f ms after the orphaned start command ended", (stop-startEnd)*1000)
	}
}

// TestStormDoesNotDelayOtherDoors floods a one-port UDP door whose
// command is slow (and has a stop command) with datagrams; a knock on
// another door meanwhile must have its command run next, not after the
// storm's backlog. Refusals are summarised, not logged one by one, and
// SIGTERM then drops the backlog of start commands (counted) instead of
// running it.
func TestStormDoesNotDelayOtherDoors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 3)
	events := filepath.Join(dir, "events")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[options]
	MaxCommands = 4
[storm]
	sequence = %[1]d:udp
	start_command = echo s >> %[3]s; sleep 1
	cmd_timeout = 1
	stop_command = true
[other]
	sequence = %[2]d:udp,%[4]d:udp
	start_command = echo "o $(date +%%s.%%N)" >> %[3]s
`, p[0], p[1], events, p[2]))
	d := startDaemon(t, nil, "-c", conf, "-v", "--backend", "listener", "-i", "lo", "--state-dir", filepath.Join(dir, "state"))
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p[0]}
	// About 1 s of storm, bounded in packets: 3,000 datagrams.
	storm := func(n int) {
		for i := 0; i < n; i++ {
			c.WriteTo([]byte{0}, to)
			if i%30 == 29 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	storm(1500)
	waitOutput(t, d, "storm: OPEN SESAME", 100)
	before := strings.Count(strings.Join(fileLines(events), "\n"), "s")
	udpKnock(t, "127.0.0.2", p[1])
	udpKnock(t, "127.0.0.2", p[2])
	sent := time.Now()
	storm(1500)
	var ran time.Time
	var after int
	deadline := time.Now().Add(15 * time.Second)
	for ran.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("the other door's command did not run within 15 s of its knock during the storm:\n%s", tail(d.output(), 40))
		}
		after = 0
		for _, l := range fileLines(events) {
			if l == "s" {
				after++
			} else if f := strings.Fields(l); len(f) == 2 && f[0] == "o" {
				ts, _ := strconv.ParseFloat(f[1], 64)
				ran = time.Unix(0, int64(ts*1e9))
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The storm's commands started between the knock and the other
	// door's: those running then (4) and at most one turn each after.
	if n := after - before; n > 8 {
		t.Errorf("%d storm commands started between the other door's knock and its command", n)
	}
	begin := time.Now()
	d.stop()
	t.Logf("SIGTERM during the storm's backlog: exited after %v", time.Since(begin).Round(time.Millisecond))
	out := d.output()
	if !strings.Contains(out, "start commands not run: shutting down") {
		t.Errorf("the backlog was not dropped at shutdown:\n%s", tail(out, 20))
	}
	opened := strings.Count(out, "storm: OPEN SESAME")
	refusals := slices.DeleteFunc(strings.Split(out, "\n"), func(l string) bool {
		return !strings.Contains(l, "storm: ") || strings.Contains(l, "OPEN SESAME") || strings.Contains(l, "running command") ||
			strings.Contains(l, "command timeout") || strings.Contains(l, "Stage 1")
	})
	t.Logf("storm: %d openings logged; the other door's command ran %v after its knock, after %d storm commands; refusals: %q",
		opened, ran.Sub(sent).Round(time.Millisecond), after-before, refusals)
	if opened > 1024+4*3 && !strings.Contains(out, "start commands refused in the last second: queue full") {
		t.Errorf("refusals not summarised:\n%s", tail(out, 20))
	}
	if len(refusals) > 10 {
		t.Errorf("%d lines on refusals: logged one by one?\n%s", len(refusals), tail(out, 20))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// TestStateDirWritableByOthers: a state directory anyone may write (a
// 1777 /tmp path) stops start-up with what to chmod.
func TestStateDirWritableByOthers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	os.Chmod(state, 0o777|os.ModeSticky)
	p := freePorts(t, 1)
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf("[d]\n\tsequence = %d:udp\n\tcommand = true\n\tstop_command = true\n", p[0]))
	out, code := runKnockd(t, "-c", conf, "--backend", "listener", "-i", "lo", "--state-dir", state)
	if code != 1 || !strings.Contains(out, "is writable by group or others (mode 1777)") || !strings.Contains(out, "chmod go-w "+state) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

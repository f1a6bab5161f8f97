package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/internal/netlab"
)

// jsonLine is a line of --log-format json.
type jsonLine struct {
	Time  string `json:"time"`
	Event string `json:"event"`
	Door  string `json:"door"`
	Src   string `json:"src"`
	Stage int    `json:"stage"`
	Msg   string `json:"msg"`
}

// parseJSONLines parses every line of s that starts with "{" (all of
// them when strict) and fails on one that does not parse.
func parseJSONLines(t *testing.T, what, s string, strict bool) []jsonLine {
	t.Helper()
	var out []jsonLine
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(l, "{") && !strict {
			continue
		}
		var j jsonLine
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("%s: line %q is not JSON: %v", what, l, err)
		}
		if j.Time == "" || j.Event == "" || j.Msg == "" {
			t.Errorf("%s: line %q lacks time, event or msg", what, l)
		}
		out = append(out, j)
	}
	return out
}

// TestExplainJSONAndReplay runs our knockd (raw backend, -D, --log-format
// json, a LogFile) in a server namespace while tcpdump records the
// server's interface, knocks from a client namespace (a wrong port, a
// good sequence, one that times out), then replays the capture as an
// unprivileged user: the log file parses line by line and carries the
// door and source; -D explains the wrong port and the timeout; and the
// replay prints the same OPEN SESAME, stage, timeout and explanation
// lines as the live run, runs no command and writes no file.
func TestExplainJSONAndReplay(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip", "tcpdump", "setpriv", "timeout")
	srv := netlab.NewNetns(t, "kexp-srv")
	cli := netlab.NewNetns(t, "kexp-cli")
	link := netlab.NewVeth(t, srv, cli, netlab.Addressing{}) // server 198.18.0.1, client 198.18.0.2
	sdev := link.A.Dev

	// A directory the unprivileged replay can read.
	dir, err := os.MkdirTemp("", "knock-replay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, `[options]
	LogFile = knockd.log
[openSSH]
	sequence = 7000,8000,9000
	seq_timeout = 2
	tcpflags = syn
	command = echo open %IP% >> cmds
[other]
	sequence = 8500,9500
	seq_timeout = 2
	command = echo other %IP% >> cmds
`)
	capFile := filepath.Join(dir, "knock.pcap")
	// Bounded in packets and time; -U writes each packet as it comes,
	// -Z root keeps the file writable where tcpdump opened it.
	dump := startIn(t, srv, dir, "listening on", "timeout", "60", "tcpdump", "-n", "-i", sdev, "-U", "-c", "200", "-Z", "root", "-w", capFile, "tcp or udp")
	d := startOurs(t, srv, dir, conf, sdev, "-D", "--log-format", "json")
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_DUMP") != "" {
			t.Logf("knockd output:\n%s", d.output())
			t.Logf("tcpdump output:\n%s", dump.output())
		}
	})

	const c = "198.18.0.2"
	knockFrom(t, cli, knockBin, "198.18.0.1", "7000", "8500")
	d.waitLine(c + ": openSSH: attempt ended at stage 1: got 8500/tcp, expected 8000/tcp")
	knockFrom(t, cli, knockBin, "198.18.0.1", "7000", "8000", "9000")
	d.waitLine(c + ": openSSH: OPEN SESAME")
	knockFrom(t, cli, knockBin, "198.18.0.1", "7000")
	d.waitLine(c + ": openSSH: attempt ended at stage 1: timed out after 2s (Seq_Timeout), expected 8000/tcp")
	d.stop()
	dump.stop()
	os.Chmod(capFile, 0o644)

	// The live run: every -v and -D line is JSON (the few lines before
	// the log is set up are not); the log file is JSON through and
	// through, and its OPEN SESAME carries door and source.
	live := parseJSONLines(t, "knockd -v -D", d.output(), false)
	logBefore, err := os.ReadFile(filepath.Join(dir, "knockd.log"))
	if err != nil {
		t.Fatal(err)
	}
	file := parseJSONLines(t, "knockd.log", string(logBefore), true)
	var opened bool
	for _, l := range file {
		if l.Event == "open" {
			opened = l.Door == "openSSH" && l.Src == c && l.Msg == c+": openSSH: OPEN SESAME"
		}
	}
	if !opened {
		t.Errorf("knockd.log has no open event for openSSH from %s:\n%s", c, logBefore)
	}
	cmdsBefore, _ := os.ReadFile(filepath.Join(dir, "cmds"))

	// The replay, as nobody, in text and in JSON.
	replay := func(format string) (string, string) {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			knockdBin, "-D", "--log-format", format, "--replay", capFile, "-c", conf)
		cmd.Dir = dir
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("knockd --replay: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	out, errOut := replay("json")
	replayed := parseJSONLines(t, "knockd --replay", out, true)
	if !strings.Contains(errOut, "replayed ") {
		t.Errorf("replay's summary missing from stderr:\n%s", errOut)
	}
	knocks := func(ls []jsonLine) []jsonLine {
		var out []jsonLine
		for _, l := range ls {
			switch l.Event {
			case "stage", "open", "timeout", "attempt ended", "ignored":
				l.Time = ""
				out = append(out, l)
			}
		}
		return out
	}
	if diff := cmp.Diff(knocks(live), knocks(replayed)); diff != "" {
		t.Errorf("replay's knock lines differ from the live run's (-live +replay):\n%s", diff)
	}
	text, textErr := replay("text")
	if os.Getenv("E2E_DUMP") != "" {
		t.Logf("knockd -D --replay:\n%s%s", textErr, text)
	}
	for _, want := range []string{
		c + ": openSSH: OPEN SESAME",
		c + ": openSSH: attempt ended at stage 1: got 8500/tcp, expected 8000/tcp",
		c + ": openSSH: attempt ended at stage 1: timed out after 2s (Seq_Timeout), expected 8000/tcp",
		"openSSH: running command: echo open " + c + " >> cmds (not run: replay)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text replay lacks %q:\n%s", want, text)
		}
	}
	logAfter, _ := os.ReadFile(filepath.Join(dir, "knockd.log"))
	cmdsAfter, _ := os.ReadFile(filepath.Join(dir, "cmds"))
	if string(logAfter) != string(logBefore) || string(cmdsAfter) != string(cmdsBefore) {
		t.Errorf("the replay wrote to the log file or ran a command:\nlog %q\nthen %q\ncmds %q\nthen %q", logBefore, logAfter, cmdsBefore, cmdsAfter)
	}
}

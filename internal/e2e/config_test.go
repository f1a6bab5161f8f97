package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runKnockd runs knockd to completion (it is expected to fail at start).
func runKnockd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, knockdBin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("knockd %v did not exit:\n%s", args, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestBadConfigurationStopsStartUp checks that each kind of bad
// configuration ends in one FILE:LINE message and exit status 1, at
// start-up and with --check alike. Where knockd 0.8 accepts the file, the
// message says what 0.8 would have done with it (want08); where 0.8
// refuses it too, the message says nothing of 0.8.
func TestBadConfigurationStopsStartUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "empty.seq"), "#7000,8000\n\n")
	want08 := map[string]string{
		"port not a number":          "read it as 7000:tcp,0:tcp",
		"port 0":                     "read it as 0:tcp",
		"empty sequence":             "read it as 0:tcp,0:tcp",
		"trailing comma":             "read it as 7000:tcp,8000:tcp,0:tcp",
		"ports separated by a space": "read it as 7000:tcp",
		"timeout not whole seconds":  "read it as 5 seconds",
		"negative timeout":           "read it as -5 seconds, which times out every attempt at its second knock",
		"two doors with one name":    "run both doors, under the one name",
		"flag set and clear":         "kept the last mention of each flag: TCPFlags = !syn",
	}
	tests := []struct {
		name, conf, want string
	}{
		{"unknown key", "[openSSH]\nsequence = 7000\nseq_timout = 5\n", `:3: [openSSH] unknown key "seq_timout"`},
		{"unknown key suggestion", "[openSSH]\nsequence = 7000\nseq_timout = 5\n", `Seq_Timeout`},
		{"door key in options", "[options]\nsequence = 7000\n", `:2: [options] Sequence:`},
		{"options key in a door", "[d]\nsequence = 7000\nLogFile = /tmp/x\n", `:3: [d] LogFile:`},
		{"directive before any section", "UseSyslog\n[d]\nsequence = 7000\n", `:1: `},
		{"port not a number", "[d]\nsequence = 7000,abc\n", `:2: [d] Sequence: "abc"`},
		{"port 0", "[d]\nsequence = 0\n", `:2: [d] Sequence:`},
		{"port 65536", "[d]\nsequence = 65536\n", `:2: [d] Sequence:`},
		{"empty sequence", "[d]\nsequence = ,\n", `:2: [d] Sequence:`},
		{"trailing comma", "[d]\nsequence = 7000,8000,\n", `:2: [d] Sequence:`},
		{"unknown protocol", "[d]\nsequence = 7000:icmp\n", `:2: [d] Sequence:`},
		{"unknown flag", "[d]\nsequence = 7000\ntcpflags = syn,foo\n", `:3: [d] TCPFlags:`},
		{"space-padded flag", "[d]\nsequence = 7000\ntcpflags = syn, ack\n", `:3: [d] TCPFlags:`},
		{"33 ports", "[d]\nsequence = " + strings.Repeat("7000,", 32) + "7000\n", `:2: [d] Sequence:`},
		{"timeout not whole seconds", "[d]\nsequence = 7000\nseq_timeout = 5s\n", `:3: [d] Seq_Timeout: "5s" is not a whole number of seconds`},
		{"missing one-time file", "[d]\none_time_sequences = " + dir + "/nope.seq\n", `:2: [d] One_Time_Sequences:`},
		{"one-time file with no usable line", "[d]\none_time_sequences = " + dir + "/empty.seq\n", `empty.seq`},
		{"two doors with one name", "[d]\nsequence = 7000\n[d]\nsequence = 8000\n", `:3: `},
		{"ports separated by a space", "[d]\nsequence = 7000 8000\n", `:2: [d] Sequence: "7000 8000" is not a port number`},
		{"negative timeout", "[d]\nsequence = 7000\nseq_timeout = -5\n", `:3: [d] Seq_Timeout: "-5"`},
		{"flag set and clear", "[d]\nsequence = 7000\ntcpflags = syn,!syn\n", `:3: [d] TCPFlags: syn is both required and excluded`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".conf")
			writeFile(t, conf, tt.conf)
			for _, args := range [][]string{
				{"-c", conf, "--backend", "listener", "--state-dir", filepath.Join(dir, "state")},
				{"--check", "-c", conf},
			} {
				out, code := runKnockd(t, args...)
				if code != 1 {
					t.Errorf("%v: exit status %d, want 1; output:\n%s", args, code, out)
				}
				if !strings.Contains(out, tt.want) || !strings.HasPrefix(out, conf+":") {
					t.Errorf("case %d, %v: output %q\nwant it to start with %q and contain %q", i, args, out, conf+":", tt.want)
				}
				if w, ok := want08[tt.name]; ok && !strings.Contains(out, "; knockd 0.8 would have "+w) {
					t.Errorf("%v: output %q\ndoes not say: knockd 0.8 would have %s", args, out, w)
				} else if !ok && strings.Contains(out, "knockd 0.8") {
					t.Errorf("%v: output %q speaks of knockd 0.8, which refuses this file too", args, out)
				}
				if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
					t.Errorf("%v: want one line, got %d:\n%s", args, n+1, out)
				}
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	t.Parallel()
	out, code := runKnockd(t, "-c", "/nonexistent/knockd.conf", "--backend", "listener")
	if code != 1 || !strings.Contains(out, "/nonexistent/knockd.conf") {
		t.Errorf("exit %d, output %q: want 1 and the path named", code, out)
	}
}

func TestUnknownBackend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	writeFile(t, conf, "[d]\nsequence = 7000\n")
	out, code := runKnockd(t, "-c", conf, "--backend", "pcap", "--state-dir", dir)
	if code != 1 || !strings.Contains(out, `unknown backend "pcap"`) {
		t.Errorf("exit %d, output %q", code, out)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	out, code := runKnockd(t, "-V")
	if code != 0 || !strings.HasPrefix(out, "knockd ") {
		t.Errorf("-V: exit %d, %q", code, out)
	}
	out, code = runKnockd(t, "-h")
	for _, flag := range []string{"--interface", "--daemon", "--config", "--debug", "--lookup", "--verbose", "--version", "--help", "--pidfile", "--logfile", "--only-ip-v4", "--backend"} {
		if !strings.Contains(out, flag) {
			t.Errorf("-h does not mention %s", flag)
		}
	}
	if code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

// TestCheck runs knockd -t on a good configuration while this test holds
// one of its ports: a knockd that tried to bind it would fail. It must
// print the doors and exit 0, and leave the port to its holder.
func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conf := filepath.Join(dir, "k.conf")
	writeFile(t, conf, fmt.Sprintf("[options]\nLogFile = %[1]s/log\n[openSSH]\nsequence = %[2]d,8000:udp\nseq_timeout = 5\ntcpflags = syn\n"+
		"start_command = touch %[1]s/ran\ncmd_timeout = 3\nstop_command = touch %[1]s/stopped\n", dir, port))
	for _, flag := range []string{"-t", "--check"} {
		out, code := runKnockd(t, flag, "-c", conf, "--backend", "listener", "--state-dir", filepath.Join(dir, "state"))
		if code != 0 {
			t.Fatalf("knockd %s: exit status %d, want 0:\n%s", flag, code, out)
		}
		for _, want := range []string{
			"[openSSH] (" + conf + ":3)",
			fmt.Sprintf("%d:tcp,8000:udp", port),
			"5 s", "syn", "touch " + dir + "/ran", "touch " + dir + "/stopped",
			fmt.Sprintf("tcp %d", port),
			conf + ": 1 door, no errors; nothing was bound, opened or run",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("knockd %s: output lacks %q:\n%s", flag, want, out)
			}
		}
	}
	// Under strace: no socket of any kind, and no command, is made.
	if strace, err := exec.LookPath("strace"); err != nil {
		t.Log("strace is not installed: not tracing knockd -t's system calls")
	} else {
		trace := filepath.Join(dir, "trace")
		out, err := exec.Command(strace, "-f", "-qq", "-o", trace, "-e", "trace=socket,bind,connect,execve",
			knockdBin, "-t", "-c", conf, "--backend", "auto", "-i", "lo").CombinedOutput()
		b, rerr := os.ReadFile(trace)
		switch {
		case err != nil || rerr != nil:
			t.Logf("strace cannot trace here (%v, %v): %s", err, rerr, out)
		case strings.Contains(string(b), "socket(") || strings.Count(string(b), "execve(") != 1:
			t.Errorf("knockd -t made sockets or ran commands:\n%s", b)
		}
	}
	for _, f := range []string{"log", "ran", "stopped", "state"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s exists after knockd -t", f)
		}
	}
	// The port is still ours: accept a connection on it.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
}

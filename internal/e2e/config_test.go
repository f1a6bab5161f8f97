package e2e

import (
	"context"
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
// configuration ends in one FILE:LINE message and exit status 1.
func TestBadConfigurationStopsStartUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "empty.seq"), "#7000,8000\n\n")
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
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".conf")
			writeFile(t, conf, tt.conf)
			out, code := runKnockd(t, "-c", conf, "--backend", "listener", "--state-dir", filepath.Join(dir, "state"))
			if code != 1 {
				t.Errorf("exit status %d, want 1; output:\n%s", code, out)
			}
			if !strings.Contains(out, tt.want) || !strings.HasPrefix(out, conf+":") {
				t.Errorf("case %d: output %q\nwant it to start with %q and contain %q", i, out, conf+":", tt.want)
			}
			if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
				t.Errorf("want one line, got %d:\n%s", n+1, out)
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

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// asNobody returns the command prefix that runs a program as an
// unprivileged user, or skips the test when that is not possible.
func asNobody(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil // already unprivileged
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed: cannot drop privileges to test an unprivileged run")
	}
	if _, err := user.LookupId("65534"); err != nil {
		t.Skip("no user 65534 to run as")
	}
	return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}
}

// sharedTempDir returns a temporary directory that an unprivileged user
// can use too.
func sharedTempDir(t *testing.T) string {
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	return dir
}

// TestTutorialFirstExampleUnprivileged runs the tutorial's first example
// (open on one sequence, close on its reverse) as an unprivileged user on
// the listener backend, knocked by our client and by knock 0.8.
func TestTutorialFirstExampleUnprivileged(t *testing.T) {
	t.Parallel()
	prefix := asNobody(t)
	dir := sharedTempDir(t)
	p := freePorts(t, 3)
	out := filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[options]
	logfile = %[4]s/knockd.log
[openSSH]
	sequence = %[1]d,%[2]d,%[3]d
	seq_timeout = 5
	command = echo open %%IP%% >> %[5]s
	tcpflags = syn
[closeSSH]
	sequence = %[3]d,%[2]d,%[1]d
	seq_timeout = 5
	command = echo close %%IP%% >> %[5]s
	tcpflags = syn
`, p[0], p[1], p[2], dir, out))
	d := startDaemon(t, prefix, "-c", conf, "-v", "--backend", "listener", "-i", "lo", "--state-dir", filepath.Join(dir, "state"))

	clients := []string{knockBin}
	if _, err := exec.LookPath("knock"); err == nil {
		clients = append(clients, "knock")
	} else {
		t.Log("knock 0.8 not installed: trying our client only")
	}
	want := ""
	for _, client := range clients {
		knock(t, client, "127.0.0.1", fmt.Sprint(p[0]), fmt.Sprint(p[1]), fmt.Sprint(p[2]))
		want += "open 127.0.0.1\n"
		if got := waitFile(t, out, want); got != want {
			t.Fatalf("%s: commands %q, want %q", client, got, want)
		}
		knock(t, client, "127.0.0.1", fmt.Sprint(p[2]), fmt.Sprint(p[1]), fmt.Sprint(p[0]))
		want += "close 127.0.0.1\n"
		if got := waitFile(t, out, want); got != want {
			t.Fatalf("%s: commands %q, want %q", client, got, want)
		}
	}
	d.waitLine("closeSSH: running command")
	d.stop()

	// The -v output has knockd's texts, in order, for each round.
	var wantLines []string
	for range clients {
		for _, door := range []string{"openSSH", "closeSSH"} {
			verb := map[string]string{"openSSH": "open", "closeSSH": "close"}[door]
			wantLines = append(wantLines,
				"127.0.0.1: "+door+": Stage 1", "127.0.0.1: "+door+": Stage 2", "127.0.0.1: "+door+": Stage 3",
				"127.0.0.1: "+door+": OPEN SESAME",
				door+": running command: echo "+verb+" 127.0.0.1 >> "+out)
		}
	}
	var got []string
	for _, l := range strings.Split(d.output(), "\n") {
		if strings.HasPrefix(l, "127.0.0.1: ") || strings.Contains(l, ": running command: ") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("-v output:\n%s\nwant these lines:\n%s", d.output(), strings.Join(wantLines, "\n"))
	}
	if !strings.Contains(d.output(), "listening on lo...") {
		t.Errorf("no 'listening on lo...' line:\n%s", d.output())
	}

	// The log file has knockd's time stamps and texts.
	logText, err := os.ReadFile(filepath.Join(dir, "knockd.log"))
	if err != nil {
		t.Fatal(err)
	}
	stamp := `^\[\d{4}-\d\d-\d\d \d\d:\d\d\] `
	for _, re := range []string{
		stamp + `starting up, listening on lo$`,
		stamp + `127\.0\.0\.1: openSSH: Stage 1$`,
		stamp + `127\.0\.0\.1: openSSH: OPEN SESAME$`,
		stamp + `openSSH: running command: echo open 127\.0\.0\.1 >> `,
		stamp + `shutting down$`,
	} {
		if !regexp.MustCompile(`(?m)` + re).Match(logText) {
			t.Errorf("log file has no line matching %s:\n%s", re, logText)
		}
	}
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonMode checks -d: knockd returns once the detached daemon is
// up, the pid file names it, it opens doors, and SIGTERM ends it and
// removes the pid file. A bad configuration still fails in the
// foreground, with its message and exit status 1.
func TestDaemonMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 2)
	out := filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	pidFile := filepath.Join(dir, "knockd.pid")
	writeFile(t, conf, fmt.Sprintf("[door]\n\tsequence = %d:udp,%d:udp\n\tcommand = echo open %%IP%% >> %s\n", p[0], p[1], out))
	msg, code := runKnockd(t, "-d", "-c", conf, "-i", "lo", "-p", pidFile, "--state-dir", filepath.Join(dir, "state"))
	if code != 0 {
		t.Fatalf("knockd -d: exit %d\n%s", code, msg)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("no pid file when knockd -d returned: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file holds %q", b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	udpKnock(t, "127.0.0.1", p[0])
	udpKnock(t, "127.0.0.1", p[1])
	waitFile(t, out, "open 127.0.0.1\n")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not end on SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}

	writeFile(t, conf, "[door]\n\tsequence = 7000,\n")
	msg, code = runKnockd(t, "-d", "-c", conf, "-p", pidFile, "--state-dir", filepath.Join(dir, "state"))
	if code != 1 || !strings.Contains(msg, conf+":2:") {
		t.Errorf("knockd -d with a bad configuration: exit %d, %q", code, msg)
	}
}

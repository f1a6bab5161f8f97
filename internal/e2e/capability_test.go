package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRawBackendWithOnlyCapNetRaw runs the raw backend as an unprivileged
// user holding CAP_NET_RAW and nothing else (as an ambient capability),
// and checks that the same user without it gets a message that names the
// capability and how to grant it.
func TestRawBackendWithOnlyCapNetRaw(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to hand CAP_NET_RAW to an unprivileged user (CI runs as root)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	dir := sharedTempDir(t)
	p := freePorts(t, 2)
	out := filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf("[door]\n\tsequence = %d,%d:udp\n\tseq_timeout = 5\n\tcommand = echo open %%IP%% >> %s\n", p[0], p[1], out))
	args := []string{"-c", conf, "-i", "lo", "-v", "--backend", "raw", "--state-dir", filepath.Join(dir, "state")}
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}

	withCap := append(append([]string{}, nobody...), "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw")
	d := startDaemon(t, withCap, args...)
	knock(t, knockBin, "127.0.0.1", fmt.Sprint(p[0]), fmt.Sprintf("%d:udp", p[1]))
	waitFile(t, out, "open 127.0.0.1\n")
	d.stop()

	without := append(append([]string{}, nobody...), "--inh-caps=-all", knockdBin)
	msg, err := exec.Command(without[0], append(without[1:], args...)...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("without CAP_NET_RAW: %v, want exit status 1\n%s", err, msg)
	}
	for _, want := range []string{"CAP_NET_RAW", "setcap cap_net_raw+ep", "--backend listener"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if n := strings.Count(strings.TrimSpace(string(msg)), "\n"); n != 0 {
		t.Errorf("want one line, got:\n%s", msg)
	}
}

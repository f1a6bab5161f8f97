package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/knock-go/knock/internal/klog/klogtest"
)

// syslogStamp is glibc's syslog(3) header as Debian's knockd 0.8 sends
// it: priority 29 (daemon.notice), "Mmm dd hh:mm:ss" with the day padded
// by a space, and the tag with no pid.
var syslogStamp = regexp.MustCompile(`^<29>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123][0-9] [012][0-9]:[0-5][0-9]:[0-6][0-9] knockd: `)

// oursOnly matches the syslog lines of ours that knockd 0.8 has no
// counterpart for: the raw backend's report of the interfaces it watches.
var oursOnly = regexp.MustCompile(`^attached to interface \S+ \(index \d+\)$`)

// devLogCommand returns a command that runs argv in a mount namespace of
// its own where /dev/log is the socket at sock, in the working directory
// dir. Debian's knockd opens /dev/log itself, so this is the only way to
// hear it. /dev there is an overlay whose upper layer is in dir: the
// host's /dev never changes, and the process still has /dev/null.
func devLogCommand(t *testing.T, dir, sock string, argv ...string) *exec.Cmd {
	t.Helper()
	up, work := filepath.Join(dir, "dev-upper"), filepath.Join(dir, "dev-work")
	for _, d := range []string{up, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := `mount -t overlay overlay -o "lowerdir=/dev,upperdir=$1,workdir=$2" /dev && : >/dev/log && mount --bind "$3" /dev/log && shift 3 && exec "$@"`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh", up, work, sock}, argv...)...)
	// A new mount namespace, with / made private (os/exec does that with
	// CLONE_NEWNS), so that the mounts stay in it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	cmd.Dir = dir
	return cmd
}

func requireDevLogLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: Debian's knockd opens /dev/log itself, so it runs in a mount namespace of its own (CI runs as root)")
	}
	for _, tool := range []string{debianKnockd, "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (CI installs it): %v", tool, err)
		}
	}
	if out, err := devLogCommand(t, t.TempDir(), klogtest.NewSyslog(t).Path, "true").CombinedOutput(); err != nil {
		t.Skipf("cannot give a process a /dev/log of its own here (an overlay on /dev in a new mount namespace): %v: %s", err, out)
	}
}

// Debian's knockd 0.8 and ours send the same syslog datagrams, byte for
// byte but for the time stamp's value, for the same knocks, a reload and
// a shutdown: fail2ban filters for "knockd: <HOST>" and the like match
// ours as they match 0.8's.
func TestSyslogLikeDebian(t *testing.T) {
	requireDevLogLab(t)
	ports := freePorts(t, 2)
	conf := fmt.Sprintf(`[options]
	UseSyslog
	LogFile = knockd.log

[door]
	sequence = %d:udp,%d:udp
	seq_timeout = 10
	command = echo open %%IP%% >> cmds
`, ports[0], ports[1])
	argv := [2][]string{
		deb: {debianKnockd, "-c", "knockd.conf", "-i", "lo", "-v"},
		our: {knockdBin, "-c", "knockd.conf", "-i", "lo", "-v", "--backend", "raw", "--state-dir", "state"},
	}
	var got [2][]string
	// One after the other: both watch lo and would see each other's
	// knocks.
	for i := range argv {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "knockd.conf"), conf)
		devlog := klogtest.NewSyslog(t)
		d := launch(t, devLogCommand(t, dir, devlog.Path, argv[i]...), "listening on")
		knock(t, knockBin, "-u", "127.0.0.1", fmt.Sprint(ports[0]), fmt.Sprint(ports[1]))
		waitFile(t, filepath.Join(dir, "cmds"), "open 127.0.0.1")
		d.waitLine("door: running command: ")
		d.cmd.Process.Signal(syscall.SIGHUP)
		d.waitLine("re-opening log file: knockd.log")
		d.stop()
		got[i] = devlog.Until(t, " knockd: shutting down")
		for j, m := range got[i] {
			if !syslogStamp.MatchString(m) {
				t.Errorf("%s: datagram %q does not start with <29>, a time stamp like glibc's and knockd:", daemonNames[i], m)
			}
			got[i][j] = syslogStamp.ReplaceAllString(m, "<29>Mmm dd hh:mm:ss knockd: ")
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", daemonNames[i], d.output())
		}
	}
	want := []string{
		"<29>Mmm dd hh:mm:ss knockd: starting up, listening on lo",
		"<29>Mmm dd hh:mm:ss knockd: 127.0.0.1: door: Stage 1",
		"<29>Mmm dd hh:mm:ss knockd: 127.0.0.1: door: Stage 2",
		"<29>Mmm dd hh:mm:ss knockd: 127.0.0.1: door: OPEN SESAME",
		"<29>Mmm dd hh:mm:ss knockd: door: running command: echo open 127.0.0.1 >> cmds\n",
		"<29>Mmm dd hh:mm:ss knockd: re-reading config file: knockd.conf\n",
		"<29>Mmm dd hh:mm:ss knockd: re-opening log file: knockd.log\n",
		"<29>Mmm dd hh:mm:ss knockd: shutting down",
	}
	if !slices.Equal(got[deb], want) {
		t.Errorf("knockd 0.8 sent (the test's expectation is out of date):\n%q\nexpected:\n%q", got[deb], want)
	}
	// Ours says more about its capture than 0.8 (additive lines, which
	// no filter for 0.8's lines matches); the rest is the same.
	got[our] = slices.DeleteFunc(got[our], func(m string) bool {
		return oursOnly.MatchString(strings.TrimPrefix(m, "<29>Mmm dd hh:mm:ss knockd: "))
	})
	if !slices.Equal(got[our], got[deb]) {
		t.Errorf("syslog datagrams differ:\nknockd 0.8:\n%q\nours:\n%q", got[deb], got[our])
	}
}

// A LogFile that cannot be opened is a warning in 0.8's words, and both
// go on.
func TestUnopenableLogFileLikeDebian(t *testing.T) {
	requireDevLogLab(t)
	ports := freePorts(t, 1)
	conf := fmt.Sprintf("[options]\n\tLogFile = nodir/knockd.log\n\n[door]\n\tsequence = %d:udp\n\tcommand = echo open %%IP%% >> cmds\n", ports[0])
	const warning = "warning: cannot open logfile: No such file or directory"
	for _, argv := range [][]string{
		{debianKnockd, "-c", "knockd.conf", "-i", "lo", "-v"},
		{knockdBin, "-c", "knockd.conf", "-i", "lo", "-v", "--backend", "raw", "--state-dir", "state"},
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "knockd.conf"), conf)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		d := launch(t, cmd, "listening on")
		knock(t, knockBin, "-u", "127.0.0.1", fmt.Sprint(ports[0]))
		waitFile(t, filepath.Join(dir, "cmds"), "open 127.0.0.1")
		d.stop()
		if !strings.Contains(d.output(), "\n"+warning) && !strings.HasPrefix(d.output(), warning) {
			t.Errorf("%s printed no %q:\n%s", d.program(), warning, d.output())
		}
	}
}

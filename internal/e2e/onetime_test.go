package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOneTimeFileReplacedWhileRunning moves a new one-time sequences file
// over the one knockd read (mv, no SIGHUP), on the listener backend over
// loopback. knockd used to write its # at the old file's offset into a
// port of the new file (" 17001,1800#,19001"); the next SIGHUP was then
// refused and a restart exited 1. Now the new file is left intact, its
// first line becomes the door's sequence, the reload is accepted and a
// restart works.
func TestOneTimeFileReplacedWhileRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 3)
	otp := filepath.Join(dir, "otp.txt")
	out := filepath.Join(dir, "commands")
	// The line in use is not at offset 0, so that the old offset falls
	// inside a line of the new file.
	writeFile(t, otp, fmt.Sprintf("# used\n %d:udp,%d:udp\n", p[0], p[1]))
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[otp]
	one_time_sequences = %s
	seq_timeout = 5
	command = echo open %%IP%% >> %s
`, otp, out))
	args := []string{"-c", conf, "-v", "--backend", "listener", "-i", "lo", "--state-dir", filepath.Join(dir, "state")}
	d := startDaemon(t, nil, args...)

	fresh := fmt.Sprintf(" %[2]d:udp,%[1]d:udp\n %[1]d:udp,%[3]d:udp\n %[3]d:udp,%[1]d:udp\n", p[0], p[1], p[2])
	writeFile(t, filepath.Join(dir, "new"), fresh)
	if err := os.Rename(filepath.Join(dir, "new"), otp); err != nil {
		t.Fatal(err)
	}
	udp := func(ports ...int) {
		t.Helper()
		args := []string{"-u", "127.0.0.1"}
		for _, p := range ports {
			args = append(args, fmt.Sprint(p))
		}
		knock(t, knockBin, args...)
	}
	file := func() string {
		t.Helper()
		b, err := os.ReadFile(otp)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// The sequence knockd read still opens; the new file is not marked.
	udp(p[0], p[1])
	waitFile(t, out, "open 127.0.0.1\n")
	d.waitLine("was replaced since it was read")
	if got := file(); got != fresh {
		t.Fatalf("the new file was changed to %q, want it intact:\n%s", got, d.output())
	}
	// Its first line is the door's sequence now, and is marked in place.
	udp(p[1], p[0])
	waitFile(t, out, strings.Repeat("open 127.0.0.1\n", 2))
	marked := "#" + fresh[1:]
	if got := file(); got != marked {
		t.Fatalf("the file holds %q, want %q", got, marked)
	}

	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLine("re-reading config file")
	udp(p[0], p[2])
	waitFile(t, out, strings.Repeat("open 127.0.0.1\n", 3))
	if strings.Contains(d.output(), "keeping the running configuration") {
		t.Fatalf("the reload was refused:\n%s", d.output())
	}
	d.stop()
	if d.waited != nil {
		t.Fatalf("knockd exited with %v:\n%s", d.waited, d.output())
	}

	// A restart reads the file and goes on with its last line.
	d = startDaemon(t, nil, args...)
	udp(p[2], p[0])
	waitFile(t, out, strings.Repeat("open 127.0.0.1\n", 4))
	d.stop()
	if want := fmt.Sprintf("#%[2]d:udp,%[1]d:udp\n#%[1]d:udp,%[3]d:udp\n#%[3]d:udp,%[1]d:udp\n", p[0], p[1], p[2]); file() != want {
		t.Errorf("the file holds %q, want %q", file(), want)
	}
}

// TestOneTimeBadLineDisablesOnlyItsDoor: a one-time file whose line in use
// is not a sequence disables that door, with its FILE:LINE, and the other
// doors start and reload as usual. It used to stop start-up (exit 1) and
// make every SIGHUP fail.
func TestOneTimeBadLineDisablesOnlyItsDoor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 2)
	otp := filepath.Join(dir, "otp.txt")
	out := filepath.Join(dir, "commands")
	writeFile(t, otp, " 17001,1800#,19001\n")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[otp]
	one_time_sequences = %[1]s
	command = echo otp %%IP%% >> %[2]s
[fixed]
	sequence = %[3]d:udp,%[4]d:udp
	command = echo fixed %%IP%% >> %[2]s
`, otp, out, p[0], p[1]))
	d := startDaemon(t, nil, "-c", conf, "-v", "--backend", "listener", "-i", "lo", "--state-dir", filepath.Join(dir, "state"))
	d.waitLine(otp + ":1: ")
	d.waitLine("the door is disabled")
	knock(t, knockBin, "-u", "127.0.0.1", fmt.Sprint(p[0]), fmt.Sprint(p[1]))
	waitFile(t, out, "fixed 127.0.0.1\n")

	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLine("re-reading config file")
	waitOutput(t, d, "the door is disabled", 2)
	knock(t, knockBin, "-u", "127.0.0.1", fmt.Sprint(p[0]), fmt.Sprint(p[1]))
	waitFile(t, out, "fixed 127.0.0.1\nfixed 127.0.0.1\n")
	if strings.Contains(d.output(), "keeping the running configuration") {
		t.Fatalf("the reload was refused:\n%s", d.output())
	}
}

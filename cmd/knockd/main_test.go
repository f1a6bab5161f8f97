package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMain lets the tests run this test binary as knockd itself (with
// $KNOCKD_TEST_MAIN set), so that -d can start its detached copy.
func TestMain(m *testing.M) {
	if os.Getenv("KNOCKD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// usage08 is knockd 0.8's usage.
const usage08 = `usage: knockd [options]
options:
  -i, --interface <int>  network interface to listen on (default "eth0")
  -d, --daemon           run as a daemon
  -c, --config <file>    use an alternate config file
  -D, --debug            output debug messages
  -l, --lookup           lookup DNS names (may be a security risk)
  -p, --pidfile          use an alternate pidfile
  -g, --logfile          use an alternate logfile
  -v, --verbose          be verbose
  -4, --only-ip-v4       do not track ipv6
  -V, --version          display version
  -h, --help             this help

`

// usageOurs is ours: knockd 0.8's, with our default interface and our
// options in the same layout.
const usageOurs = `usage: knockd [options]
options:
  -i, --interface <int>  network interface to listen on (default "any"; or a comma-separated list)
  -d, --daemon           run as a daemon
  -c, --config <file>    use an alternate config file
  -D, --debug            output debug messages
  -l, --lookup           lookup DNS names (may be a security risk)
  -p, --pidfile          use an alternate pidfile
  -g, --logfile          use an alternate logfile
  -v, --verbose          be verbose
  -4, --only-ip-v4       do not track ipv6
  -t, --check            check the configuration and exit: print each door, bind nothing
      --backend <how>    how to capture: auto (default), raw (AF_PACKET, needs CAP_NET_RAW) or listener (bound sockets, no privileges)
      --state-dir <dir>  keep pending stop commands in dir (default: StateDir in the config, else a directory named after the config file under $STATE_DIRECTORY, /var/lib/knockd for root, or ~/.local/state/knockd)
      --log-format <fmt>  write the -v, -D and LogFile lines as fmt: text (default: LogFormat in the config, else text) or json (one object per line; syslog keeps the text)
      --replay <file>    read the knocks of a pcap or pcapng file (tcpdump -w) and print what the daemon would log, in the capture's time; runs nothing, writes nothing, needs no privileges
      --control <path>   the control socket is path (default: ControlSocket in the config, else one named after the config file under $RUNTIME_DIRECTORY, /run/knockd for root, or $XDG_RUNTIME_DIR/knockd)
      --metrics <addr>   serve Prometheus metrics at http://addr/metrics, addr being host:port (default: MetricsAddress in the config, else none)
      --status           ask the running knockd for its doors, openings, attempts and counters, and exit
      --json             with --status: print one JSON document
      --revoke <ip>      close the openings of ip now (running their stop commands), and exit
      --door <name>      with --revoke: only on the door named
  -V, --version          display version
  -h, --help             this help

`

// to08 turns our usage into knockd 0.8's: the -i line as 0.8 has it,
// without our options.
func to08(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		switch {
		case strings.HasPrefix(line, "  -i, "):
			line = "  -i, --interface <int>  network interface to listen on (default \"eth0\")\n"
		case strings.HasPrefix(line, "  -t, --check "), strings.HasPrefix(line, "      --"):
			// Ours: every added option without a short form.
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

func TestUsageIs08s(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff(usage08, to08(usageOurs)); diff != "" {
		t.Errorf("usage, our additions left out (-knockd 0.8 +ours):\n%s", diff)
	}
}

const versionOurs = "knockd 0.8\nA Go rewrite of knock by Judd Vinet: https://github.com/knock-go/knock\nversion: unknown\ncommit: unknown\n"

func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.conf")
	notFound := missing + ": cannot read the configuration: no such file or directory\n"
	tests := []struct {
		args           string
		code           int
		stdout, stderr string
	}{
		{args: "-h", stdout: usageOurs},
		{args: "--help", stdout: usageOurs},
		{args: "--he", stdout: usageOurs},
		{args: "-c {c} -h -x", stdout: usageOurs},
		{args: "-V", stdout: versionOurs},
		{args: "--vers", stdout: versionOurs},
		{args: "-dvc{c} -V", stdout: versionOurs},
		// knockd 0.8: getopt's complaint, the usage, and status 0.
		{args: "-x", stderr: "knockd: invalid option -- 'x'\n", stdout: usageOurs},
		{args: "-x -V", stderr: "knockd: invalid option -- 'x'\n", stdout: usageOurs},
		{args: "--bogus", stderr: "knockd: unrecognized option '--bogus'\n", stdout: usageOurs},
		{args: "--d", stderr: "knockd: option '--d' is ambiguous; possibilities: '--daemon' '--debug'\n", stdout: usageOurs},
		{args: "-c", stderr: "knockd: option requires an argument -- 'c'\n", stdout: usageOurs},
		{args: "-dvc", stderr: "knockd: option requires an argument -- 'c'\n", stdout: usageOurs},
		{args: "--conf", stderr: "knockd: option '--config' requires an argument\n", stdout: usageOurs},
		{args: "--verbose=1", stderr: "knockd: option '--verbose' doesn't allow an argument\n", stdout: usageOurs},
		// Every form reaches the configuration.
		{args: "-c{c}", code: 1, stderr: notFound},
		{args: "-vc {c}", code: 1, stderr: notFound},
		{args: "--conf={c} --verb -Dl4t", code: 1, stderr: notFound},
		{args: "--config {c} -ilo -p{c}.pid -g {c}.log --backend=listener --state-dir {c}.d", code: 1, stderr: notFound},
		{args: "-c /nonexistent/x.conf --inter lo --conf {c}", code: 1, stderr: notFound},
		// knockd 0.8 fails on an empty name; so does ours, rather than
		// read /etc/knockd.conf.
		{args: "-c {empty}", code: 1, stderr: "knockd: -c \"\": no configuration file named (give its path, or leave -c out for /etc/knockd.conf)\n"},
		{args: "-c {c} --config= -v", code: 1, stderr: "knockd: -c \"\": no configuration file named (give its path, or leave -c out for /etc/knockd.conf)\n"},
		// Operands are ignored, with a warning.
		{args: "-c {c} stray", code: 1, stderr: "knockd: warning: ignoring argument \"stray\": knockd takes options only\n" + notFound},
		{args: "a -c {c} -- -x", code: 1, stderr: "knockd: warning: ignoring argument \"a\": knockd takes options only\n" +
			"knockd: warning: ignoring argument \"-x\": knockd takes options only\n" + notFound},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		args := []string{"knockd"}
		for _, a := range strings.Fields(strings.ReplaceAll(tt.args, "{c}", missing)) {
			if a == "{empty}" {
				a = ""
			}
			args = append(args, a)
		}
		code := run(args, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("knockd %s: exit status %d, want %d", tt.args, code, tt.code)
		}
		if diff := cmp.Diff(tt.stdout, stdout.String()); diff != "" {
			t.Errorf("knockd %s: stdout (-want +got):\n%s", tt.args, diff)
		}
		if diff := cmp.Diff(tt.stderr, stderr.String()); diff != "" {
			t.Errorf("knockd %s: stderr (-want +got):\n%s", tt.args, diff)
		}
	}
}

// ambiguous matches getopt's list of possibilities.
var ambiguous = regexp.MustCompile(`possibilities:(( '[^']*')+)`)

// sortPossibilities sorts the list of an ambiguous prefix: getopt lists
// them in the order of its table, which for knockd 0.8 is not the order
// of its usage; ours follow the usage.
func sortPossibilities(s string) string {
	return ambiguous.ReplaceAllStringFunc(s, func(m string) string {
		words := strings.Fields(strings.TrimPrefix(m, "possibilities:"))
		sort.Strings(words)
		return "possibilities: " + strings.Join(words, " ")
	})
}

type result struct {
	code           int
	stdout, stderr string
}

func runCommand(t *testing.T, path string, env []string, args []string) result {
	t.Helper()
	// Every case ends at the command line or at the configuration; the
	// timeout only bounds a knockd that would not.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Args[0] = "knockd"
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := result{}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("%s %q: %v", path, args, err)
		}
		r.code = ee.ExitCode()
	}
	r.stdout, r.stderr = stdout.String(), stderr.String()
	return r
}

// TestCompatKnockd08 runs Debian's knockd 0.8, when installed, and this
// knockd on the same command lines, and compares what they accept (exit
// status, getopt's complaints, usage) and which configuration file each
// then reads: every case names a file that does not exist, different
// for each case, so that both stop at it and say its name.
func TestCompatKnockd08(t *testing.T) {
	t.Parallel()
	const path = "/usr/sbin/knockd"
	if _, err := exec.LookPath(path); err != nil {
		t.Skipf("knockd 0.8 is not installed at %s", path)
	}
	if out, _ := exec.Command(path, "-V").Output(); !bytes.HasPrefix(out, []byte("knockd 0.8\n")) {
		t.Skipf("%s is not knockd 0.8: %q", path, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, tc := range []struct {
		args string
		env  []string
	}{
		{args: "-c{c} -dv"},
		{args: "-dvc{c}"},
		{args: "-dvc {c}"},
		{args: "-Dl4v -c {c}"},
		{args: "--conf={c}"},
		{args: "--config {c}"},
		{args: "--co {c} --verb --deb --dae --look --only"},
		// 0.8's --config, though --check now begins with --c too.
		{args: "--c {c}"},
		{args: "--verb -c{c}"},
		{args: "-ilo -c{c}"},
		{args: "-i lo --inter=lo --interface lo -c {c}"},
		{args: "-p/nonexistent/p -g/nonexistent/g -c{c}"},
		{args: "--pid=/nonexistent/p --log /nonexistent/g --conf {c}"},
		{args: "-c /nonexistent/x -c {c}"},
		{args: "-c {c} -- -x"},
		{args: "stray -c {c} more"},
		{args: "-c {c} stray -x"},
		{args: "-c {c} stray -x", env: []string{"POSIXLY_CORRECT=1"}},
		{args: "-c -v"},
		{args: "-c {c} -V"},
		{args: "-V -c {c}"},
		{args: "-vV"},
		{args: "-h"},
		{args: "--he"},
		{args: "-c {c} -h -x"},
		{args: "-x"},
		{args: "-vx -c {c}"},
		{args: "-x -V"},
		{args: "--bogus"},
		{args: "--bogus=1"},
		{args: "--d"},
		{args: "--ver"},
		{args: "-c"},
		{args: "-dvc"},
		{args: "--config"},
		{args: "--conf"},
		{args: "-i"},
		{args: "--verbose=1 -c {c}"},
		{args: "--only-ip-v4=yes"},
		{args: "-c {c} --help=x"},
	} {
		conf := filepath.Join(dir, fmt.Sprintf("case%d.conf", i))
		args := strings.Fields(strings.ReplaceAll(tc.args, "{c}", conf))
		want := runCommand(t, path, tc.env, args)
		got := runCommand(t, self, append([]string{"KNOCKD_TEST_MAIN=1"}, tc.env...), args)
		name := tc.args
		if tc.env != nil {
			name = strings.Join(tc.env, " ") + " " + name
		}
		if got.code != want.code {
			t.Errorf("knockd %s: exit status %d, knockd 0.8 gives %d", name, got.code, want.code)
		}
		switch {
		case strings.HasPrefix(want.stdout, "usage: ") && want.code == 0:
			// -h, or a command line getopt rejects: the same complaint
			// and the usage.
			if diff := cmp.Diff(want.stdout, to08(got.stdout)); diff != "" {
				t.Errorf("knockd %s: stdout (-knockd 0.8 +ours, our additions left out):\n%s", name, diff)
			}
			if diff := cmp.Diff(sortPossibilities(want.stderr), sortPossibilities(got.stderr)); diff != "" {
				t.Errorf("knockd %s: stderr (-knockd 0.8 +ours):\n%s", name, diff)
			}
		case strings.HasPrefix(want.stdout, "knockd 0.8\n"):
			if !strings.HasPrefix(got.stdout, "knockd 0.8\n") || got.stderr != want.stderr {
				t.Errorf("knockd %s: %q, %q; knockd 0.8 prints %q, %q", name, got.stdout, got.stderr, want.stdout, want.stderr)
			}
		default:
			// Both read a configuration that is not there: the same one.
			// 0.8 says "FILE: No such file or directory" (and prints its
			// usage); ours says which file too, after a warning for each
			// operand it ignores.
			file, _, ok := strings.Cut(want.stderr, ": No such file or directory\n")
			if !ok {
				t.Errorf("knockd %s: knockd 0.8 says %q, expected a missing file", name, want.stderr)
				continue
			}
			lines := strings.Split(strings.TrimSuffix(got.stderr, "\n"), "\n")
			last := strings.TrimPrefix(lines[len(lines)-1], "knockd: ") // -d's parent prefixes it
			if !strings.HasPrefix(last, file+": cannot read the configuration") {
				t.Errorf("knockd %s: stderr %q; knockd 0.8 reads %s", name, got.stderr, file)
			}
			for _, l := range lines[:len(lines)-1] {
				if !strings.HasPrefix(l, "knockd: warning: ignoring argument ") {
					t.Errorf("knockd %s: stderr line %q", name, l)
				}
			}
		}
	}
}

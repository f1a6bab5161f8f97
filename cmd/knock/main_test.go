package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/urfave/cli/v2"

	"github.com/knock-go/knock/internal/cmdline"
)

// ports returns a UDP port with a socket bound on 127.0.0.1, which
// counts the datagrams it gets, and a TCP port nobody listens on.
func ports(t *testing.T) (udp int, datagrams func() int, tcp int) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	datagrams = func() int {
		n := 0
		buf := make([]byte, 10)
		for {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, _, err := c.ReadFrom(buf); err != nil {
				return n
			}
			n++
		}
	}
	return c.LocalAddr().(*net.UDPAddr).Port, datagrams, l.Addr().(*net.TCPAddr).Port
}

// expand replaces {udp} and {tcp} in s and splits it into arguments.
func expand(s string, udp, tcp int) []string {
	s = strings.NewReplacer("{udp}", fmt.Sprint(udp), "{tcp}", fmt.Sprint(tcp)).Replace(s)
	return strings.Fields(s)
}

// versionText is -V's text; a test binary records no commit.
const versionText = "knock 0.8\nA Go rewrite of knock by Judd Vinet: https://github.com/knock-go/knock\nversion: unknown\ncommit: unknown\n"

// usageOut is what knock prints for -h.
var usageOut = usage(&cli.App{UsageText: usageText, Flags: new(flags).list()})

func TestRun(t *testing.T) {
	t.Parallel()
	udp, datagrams, tcp := ports(t)
	tests := []struct {
		args      string
		code      int
		stdout    string // "usage" means usageOut
		stderr    string
		datagrams int
	}{
		// knock 0.8's usage cases: usage on stdout, status 1.
		{args: "", code: 1, stdout: "usage"},
		{args: "-h", code: 1, stdout: "usage"},
		{args: "--help", code: 1, stdout: "usage"},
		{args: "127.0.0.1", code: 1, stdout: "usage"},
		{args: "-v -u", code: 1, stdout: "usage"},
		{args: "-h -V", code: 1, stdout: "usage"},
		{args: "127.0.0.1 {udp} -h", code: 1, stdout: "usage"},
		{args: "-x 127.0.0.1 1", code: 1, stdout: "usage", stderr: "knock: invalid option -- 'x'\n"},
		{args: "-xV", code: 1, stdout: "usage", stderr: "knock: invalid option -- 'x'\n"},
		{args: "127.0.0.1 -1", code: 1, stdout: "usage", stderr: "knock: invalid option -- '1'\n"},
		{args: "--foo 127.0.0.1 1", code: 1, stdout: "usage", stderr: "knock: unrecognized option '--foo'\n"},
		{args: "--ipv 127.0.0.1 1", code: 1, stdout: "usage", stderr: "knock: option '--ipv' is ambiguous; possibilities: '--ipv4' '--ipv6'\n"},
		{args: "-d", code: 1, stdout: "usage", stderr: "knock: option requires an argument -- 'd'\n"},
		{args: "--delay", code: 1, stdout: "usage", stderr: "knock: option '--delay' requires an argument\n"},
		{args: "--verbose=1 127.0.0.1 1", code: 1, stdout: "usage", stderr: "knock: option '--verbose' doesn't allow an argument\n"},
		// Version.
		{args: "-V", code: 0, stdout: versionText},
		{args: "--version", code: 0, stdout: versionText},
		{args: "-V -h", code: 0, stdout: versionText},
		{args: "-Vx", code: 0, stdout: versionText},
		{args: "127.0.0.1 1 --vers", code: 0, stdout: versionText},
		// Knocks.
		{args: "127.0.0.1 {udp}:udp", datagrams: 1},
		{args: "-v 127.0.0.1 {udp}:udp {tcp}", stdout: "hitting udp 127.0.0.1:{udp}\nhitting tcp 127.0.0.1:{tcp}\n", datagrams: 1},
		{args: "127.0.0.1 {udp} -v -u", stdout: "hitting udp 127.0.0.1:{udp}\n", datagrams: 1},
		{args: "-uv 127.0.0.1 {udp} {udp}:tcp", stdout: "hitting udp 127.0.0.1:{udp}\nhitting udp 127.0.0.1:{udp}\n", datagrams: 2},
		{args: "-vd50 127.0.0.1 {udp}:UDP", stdout: "hitting udp 127.0.0.1:{udp}\n", datagrams: 1},
		{args: "--verb --del 10 --ud 127.0.0.1 {udp}", stdout: "hitting udp 127.0.0.1:{udp}\n", datagrams: 1},
		{args: "-ud 10 127.0.0.1 {udp}", datagrams: 1},
		{args: "127.0.0.1 {udp} -vud10 {udp}:tcp", stdout: "hitting udp 127.0.0.1:{udp}\nhitting udp 127.0.0.1:{udp}\n", datagrams: 2},
		{args: "-v -6 -4 127.0.0.1 {tcp}", stdout: "hitting tcp 127.0.0.1:{tcp}\n"},
		{args: "-v -- 127.0.0.1 {tcp}", stdout: "hitting tcp 127.0.0.1:{tcp}\n"},
		{args: "--timeout 0 -v 127.0.0.1 {tcp}", stdout: "hitting tcp 127.0.0.1:{tcp}\n"},
		{args: "--timeout=2000 127.0.0.1 {tcp}"},
		// Errors.
		{args: "-d -5 127.0.0.1 {udp}:udp", code: 1, stderr: "error: delay cannot be negative\n"},
		{args: "-d abc 127.0.0.1 {udp}:udp", code: 1, stderr: "knock: invalid delay \"abc\" (want a whole number of milliseconds)\n"},
		{args: "--timeout -5 127.0.0.1 {udp}:udp", code: 1, stderr: "error: timeout cannot be negative\n"},
		{args: "-v 127.0.0.1 {udp}:udp 7000:foo", code: 1, stderr: "knock: \"7000:foo\": unknown protocol \"foo\" (want tcp or udp)\n"},
		{args: "-v 127.0.0.1 {udp}:udp 70000", code: 1, stderr: "knock: \"70000\": port out of range (want 1-65535)\n"},
		{args: "-v 127.0.0.1 {udp}:udp 0", code: 1, stderr: "knock: \"0\": port out of range (want 1-65535)\n"},
		{args: "-v 127.0.0.1 {udp}:udp no-such-service", code: 1, stderr: "knock: \"no-such-service\": unknown port or service name\n"},
		{args: "-v -- 127.0.0.1 {udp}:udp -u", code: 1, stderr: "knock: \"-u\": unknown port or service name\n"},
		{args: "-v -6 127.0.0.1 {udp}:udp", code: 1, stderr: "Failed to resolve hostname '127.0.0.1' on port {udp}\ngetaddrinfo: Address family for hostname not supported\n"},
		{args: "-v -4 ::1 {udp}:udp", code: 1, stderr: "Failed to resolve hostname '::1' on port {udp}\ngetaddrinfo: Address family for hostname not supported\n"},
	}
	// The cases share the UDP socket: run them in turn.
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		args := append([]string{"knock"}, expand(tt.args, udp, tcp)...)
		code := run(context.Background(), args, &stdout, &stderr)
		wantOut := tt.stdout
		if wantOut == "usage" {
			wantOut = usageOut
		}
		wantOut = strings.NewReplacer("{udp}", fmt.Sprint(udp), "{tcp}", fmt.Sprint(tcp)).Replace(wantOut)
		wantErr := strings.NewReplacer("{udp}", fmt.Sprint(udp), "{tcp}", fmt.Sprint(tcp)).Replace(tt.stderr)
		if code != tt.code {
			t.Errorf("knock %s: exit status %d, want %d", tt.args, code, tt.code)
		}
		if diff := cmp.Diff(wantOut, stdout.String()); diff != "" {
			t.Errorf("knock %s: stdout (-want +got):\n%s", tt.args, diff)
		}
		if diff := cmp.Diff(wantErr, stderr.String()); diff != "" {
			t.Errorf("knock %s: stderr (-want +got):\n%s", tt.args, diff)
		}
		if n := datagrams(); n != tt.datagrams {
			t.Errorf("knock %s: %d datagrams arrived, want %d", tt.args, n, tt.datagrams)
		}
	}
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	udp, _, _ := ports(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"knock", "-u", "-d", "3600000", "127.0.0.1", fmt.Sprint(udp)}, &stdout, &stderr)
	if code != 1 || stderr.Len() != 0 {
		t.Errorf("interrupted knock: status %d, stderr %q; want 1 and nothing", code, stderr.String())
	}
}

// TestCompatKnock08 runs knock 0.8, when installed, and this knock on the
// same command lines, and compares what they print and return, where this
// knock means to behave the same.
func TestCompatKnock08(t *testing.T) {
	t.Parallel()
	const path = "/usr/bin/knock"
	if _, err := exec.LookPath(path); err != nil {
		t.Skipf("knock 0.8 is not installed at %s", path)
	}
	out, _ := exec.Command(path, "-V").Output()
	if !bytes.HasPrefix(out, []byte("knock 0.8\n")) {
		t.Skipf("%s is not knock 0.8: %q", path, out)
	}
	udp, datagrams, tcp := ports(t)
	// knock 0.8's usage is ours without the options we added.
	var flags08 []cli.Flag
	for _, fl := range new(flags).list() {
		if c, ok := fl.(cli.CategorizableFlag); !ok || c.GetCategory() != cmdline.AddedCategory {
			flags08 = append(flags08, fl)
		}
	}
	usage08 := usage(&cli.App{UsageText: usageText, Flags: flags08})
	for _, args := range []string{
		"", "-h", "127.0.0.1", "-h -V", "-x 127.0.0.1 1", "-xV", "--foo 127.0.0.1 1", "--foo=bar",
		"--ipv 127.0.0.1 1", "--v", "-d", "-vd", "--delay", "--verbose=1 127.0.0.1 1", "--ipv4=x",
		"-d -5 127.0.0.1 {udp}",
		"-v 127.0.0.1 {udp}:udp {tcp} {tcp}:tcp",
		"127.0.0.1 {udp} -v -u",
		"-uv 127.0.0.1 {udp} {udp}:tcp",
		"-vd50 127.0.0.1 {udp}:udp",
		"--verb --del 10 --ud 127.0.0.1 {udp}",
		"-v -- 127.0.0.1 {tcp}",
		"-ud 10 127.0.0.1 {udp}",
		"-ud10 127.0.0.1 {udp} {udp}",
		"-u -d 10 127.0.0.1 {udp}",
		"127.0.0.1 {udp} -ud 10",
		"127.0.0.1 -vu {udp} -d10 {udp}:tcp",
		"--udp --delay=10 127.0.0.1 {udp}",
		"--ud --del=10 -vu 127.0.0.1 {udp}",
		"-vud 10 -- 127.0.0.1 {udp}",
		"-ud",
		"--udp=1 127.0.0.1 {udp}",
		"--de 127.0.0.1 {udp}",
		"-v -6 -4 127.0.0.1 {udp}:udp",
		"-v -4 localhost {udp}:udp",
		"-v ::1 {tcp} {tcp}:udp",
		"-v 127.0.0.1 0{udp}:udp",
		"-v -6 127.0.0.1 {udp}:udp",
		"-v -4 ::1 {udp}:udp",
	} {
		argv := expand(args, udp, tcp)
		var want, got [2]bytes.Buffer
		cmd := exec.Command(path, argv...)
		cmd.Args[0] = "knock"
		cmd.Stdout, cmd.Stderr = &want[0], &want[1]
		wantCode := 0
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("knock 0.8 %s: %v", args, err)
			}
			wantCode = ee.ExitCode()
		}
		wantDatagrams := datagrams()
		code := run(context.Background(), append([]string{"knock"}, argv...), &got[0], &got[1])
		if code != wantCode {
			t.Errorf("knock %s: exit status %d, knock 0.8 gives %d", args, code, wantCode)
		}
		gotOut := got[0].String()
		if gotOut == usageOut {
			gotOut = usage08
		}
		if diff := cmp.Diff(want[0].String(), gotOut); diff != "" {
			t.Errorf("knock %s: stdout (-knock 0.8 +ours):\n%s", args, diff)
		}
		if diff := cmp.Diff(want[1].String(), got[1].String()); diff != "" {
			t.Errorf("knock %s: stderr (-knock 0.8 +ours):\n%s", args, diff)
		}
		if n := datagrams(); n != wantDatagrams {
			t.Errorf("knock %s: %d datagrams, knock 0.8 sends %d", args, n, wantDatagrams)
		}
	}
}

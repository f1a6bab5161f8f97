package klog

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/internal/klog/klogtest"
)

func TestLogFileFormatAndTargets(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "knockd.log")
	var verbose, errs bytes.Buffer
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	l := New(Options{Verbose: &verbose, Errors: &errs, LogFile: path, Now: func() time.Time { return now }})
	l.Log("127.0.0.1: openSSH: Stage 1")
	l.Record("starting up, listening on lo")
	l.Verbose("listening on lo...")
	l.Error("warning: something")
	l.Debugf("not shown without -D")
	l.Close()
	got, _ := os.ReadFile(path)
	want := "[2026-03-04 05:06] 127.0.0.1: openSSH: Stage 1\n" +
		"[2026-03-04 05:06] starting up, listening on lo\n" +
		"[2026-03-04 05:06] warning: something\n"
	if string(got) != want {
		t.Errorf("log file:\n%s\nwant:\n%s", got, want)
	}
	if v := verbose.String(); v != "127.0.0.1: openSSH: Stage 1\nlistening on lo...\n" {
		t.Errorf("verbose output %q", v)
	}
	if e := errs.String(); e != "warning: something\n" {
		t.Errorf("stderr %q", e)
	}
}

func TestReloadFollowsRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "knockd.log")
	l := New(Options{LogFile: path})
	defer l.Close()
	l.Log("before")
	os.Rename(path, path+".1")
	l.Reload(path, false)
	l.Log("after")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "before") || !strings.Contains(string(cur), "after") || strings.Contains(string(cur), "before") {
		t.Errorf("rotated %q, current %q", old, cur)
	}
}

// A LogFile that cannot be opened is a warning in knockd 0.8's words
// (perror: "warning: cannot open logfile: No such file or directory"),
// and the other outputs go on.
func TestUnwritableLogFileIsAWarning(t *testing.T) {
	t.Parallel()
	var verbose, errs bytes.Buffer
	l := New(Options{Verbose: &verbose, Errors: &errs, LogFile: "/nonexistent/dir/knockd.log"})
	defer l.Close()
	want := "warning: cannot open logfile: No such file or directory: /nonexistent/dir/knockd.log (fix LogFile in [options] or -g; going on without it)\n"
	if got := errs.String(); got != want {
		t.Errorf("stderr:\n %q\nwant\n %q", got, want)
	}
	l.Log("127.0.0.1: d: Stage 1")
	if got := verbose.String(); got != "127.0.0.1: d: Stage 1\n" {
		t.Errorf("verbose output %q", got)
	}
}

func TestStrerrorIsCs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := os.OpenFile(dir, os.O_WRONLY|os.O_APPEND, 0) // a directory
	if got := strerror(err); got != "Is a directory" {
		t.Errorf("strerror(%v) = %q", err, got)
	}
}

func TestReloadSwitchesLogFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	var verbose, errs bytes.Buffer
	l := New(Options{Verbose: &verbose, Errors: &errs, LogFile: a})
	defer l.Close()
	l.Log("one")
	l.Reload(b, false)
	l.Log("two")
	// A path that cannot be opened keeps the running file.
	l.Reload(filepath.Join(dir, "nodir", "c.log"), false)
	l.Log("three")
	l.Reload("", false)
	l.Log("four")

	got := func(p string) string {
		s, _ := os.ReadFile(p)
		var msgs []string
		for _, line := range strings.Split(strings.TrimSpace(string(s)), "\n") {
			if _, m, ok := strings.Cut(line, "] "); ok {
				msgs = append(msgs, m)
			}
		}
		return strings.Join(msgs, "|")
	}
	if g := got(a); g != "one" {
		t.Errorf("a.log holds %q", g)
	}
	wantB := "re-opening log file: " + b + "|two|warning: cannot open logfile: No such file or directory: " + filepath.Join(dir, "nodir", "c.log") +
		" (fix LogFile in [options] or -g; still logging to " + b + ")|three"
	if g := got(b); g != wantB {
		t.Errorf("b.log holds\n %q\nwant\n %q", g, wantB)
	}
	if !strings.Contains(errs.String(), "still logging to "+b) || strings.Count(errs.String(), "\n") != 1 {
		t.Errorf("stderr %q", errs.String())
	}
	if !strings.Contains(verbose.String(), "closing log file: "+a+"\nre-opening log file: "+b+"\n") || !strings.HasSuffix(verbose.String(), "\nfour\n") {
		t.Errorf("verbose output %q", verbose.String())
	}
}

// The datagrams are those of glibc's syslog(3) in knockd 0.8 as Debian
// builds it: priority 29 (daemon.notice), "Mmm dd hh:mm:ss" with the day
// padded by a space, the tag "knockd:" with no pid, and no newline but
// where knockd's own text has one.
func TestSyslogDatagrams(t *testing.T) {
	t.Parallel()
	srv := klogtest.NewSyslog(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	var errs bytes.Buffer
	l := New(Options{Syslog: true, SyslogPath: srv.Path, Errors: &errs, Now: func() time.Time { return now }})
	defer l.Close()
	l.Log("198.18.0.2: openSSH: Stage 1")
	now = time.Date(2026, 11, 14, 23, 59, 58, 0, time.Local)
	l.Log("198.18.0.2: openSSH: OPEN SESAME")
	l.Log("openSSH: running command: echo %s >> cmds", "198.18.0.2")
	l.Record("re-reading config file: /etc/knockd.conf")
	l.Log("198.18.0.2: openSSH: sequence timeout (stage 2)")
	l.Error("openSSH: command returned non-zero status code (3)")
	for _, want := range []string{
		"<29>Mar  4 05:06:07 knockd: 198.18.0.2: openSSH: Stage 1",
		"<29>Nov 14 23:59:58 knockd: 198.18.0.2: openSSH: OPEN SESAME",
		"<29>Nov 14 23:59:58 knockd: openSSH: running command: echo 198.18.0.2 >> cmds\n",
		"<29>Nov 14 23:59:58 knockd: re-reading config file: /etc/knockd.conf\n",
		"<29>Nov 14 23:59:58 knockd: 198.18.0.2: openSSH: sequence timeout (stage 2)\n",
		"<29>Nov 14 23:59:58 knockd: openSSH: command returned non-zero status code (3)",
	} {
		if got := srv.Next(t); got != want {
			t.Errorf("datagram\n %q\nwant\n %q", got, want)
		}
	}
	if errs.String() != "openSSH: command returned non-zero status code (3)\n" {
		t.Errorf("stderr %q", errs.String())
	}
}

// With JSON, syslog keeps knockd 0.8's datagrams.
func TestSyslogStaysTextWithJSON(t *testing.T) {
	t.Parallel()
	srv := klogtest.NewSyslog(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	var verbose bytes.Buffer
	l := New(Options{Syslog: true, SyslogPath: srv.Path, Verbose: &verbose, JSON: true, Now: func() time.Time { return now }})
	defer l.Close()
	l.LogEntry(Entry{Event: EventOpen, Door: "openSSH", Src: netip.MustParseAddr("198.18.0.2"), Msg: "198.18.0.2: openSSH: OPEN SESAME"})
	if got, want := srv.Next(t), "<29>Mar  4 05:06:07 knockd: 198.18.0.2: openSSH: OPEN SESAME"; got != want {
		t.Errorf("datagram\n %q\nwant\n %q", got, want)
	}
	if !strings.HasPrefix(verbose.String(), "{") {
		t.Errorf("-v output %q, want JSON", verbose.String())
	}
}

// Like syslog(3), the logger reconnects when the system logger comes back
// (restarted: a new socket at the same path), and tries again on every
// line when it is not there at all.
func TestSyslogReconnects(t *testing.T) {
	t.Parallel()
	path := klogtest.NewSyslog(t).Path
	os.Remove(path) // no system logger yet
	var errs bytes.Buffer
	l := New(Options{Syslog: true, SyslogPath: path, Errors: &errs})
	defer l.Close()
	if !strings.HasPrefix(errs.String(), "warning: cannot connect to syslog: ") {
		t.Errorf("stderr %q", errs.String())
	}
	l.Log("lost")
	for _, msg := range []string{"first", "after a restart"} {
		// The system logger starts (again): a new socket at the path.
		srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		l.Log("%s", msg)
		buf := make([]byte, 4096)
		srv.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := srv.Read(buf)
		if got := string(buf[:n]); err != nil || !strings.HasSuffix(got, " knockd: "+msg) {
			t.Errorf("datagram %q (%v), want one ending in %q", got, err, msg)
		}
		srv.Close()
		os.Remove(path)
	}
}

// A system logger with only a stream socket gets each line ended by a
// NUL byte, as glibc sends it.
func TestSyslogStreamFallback(t *testing.T) {
	t.Parallel()
	path := klogtest.NewSyslog(t).Path + "-stream"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	l := New(Options{Syslog: true, SyslogPath: path, Now: func() time.Time { return now }})
	defer l.Close()
	l.Log("a")
	l.Log("b")
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := "<29>Mar  4 05:06:07 knockd: a\x00<29>Mar  4 05:06:07 knockd: b\x00"
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Errorf("stream got %q (%v), want %q", got, err, want)
	}
}

func TestReloadTurnsSyslogOnAndOff(t *testing.T) {
	t.Parallel()
	srv := klogtest.NewSyslog(t)
	l := New(Options{SyslogPath: srv.Path})
	defer l.Close()
	l.Log("not sent")
	l.Reload("", true)
	l.Log("sent")
	l.Reload("", false)
	l.Log("not sent either")
	l.Reload("", true)
	l.Log("sent again")
	for _, want := range []string{"sent", "sent again"} {
		if got := srv.Next(t); !strings.HasSuffix(got, " knockd: "+want) {
			t.Errorf("datagram %q, want one ending in %q", got, want)
		}
	}
}

// With JSON, the -v and -D output and the LogFile carry one object per
// line, with the door, source and stage where the line has them; syslog
// and standard error keep knockd 0.8's text.
func TestJSONLines(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "knockd.log")
	var verbose, debug, errs bytes.Buffer
	now := time.Date(2026, 3, 4, 5, 6, 7, 8000000, time.UTC)
	l := New(Options{Verbose: &verbose, Debug: &debug, Errors: &errs, LogFile: path, JSON: true, Now: func() time.Time { return now }})
	src := netip.MustParseAddr("198.18.0.2")
	l.LogEntry(Entry{Event: EventStage, Door: "openSSH", Src: src, Stage: 1, Msg: "198.18.0.2: openSSH: Stage 1"})
	l.Log("listening on %s...", "lo")
	l.DebugEntry(Entry{Event: EventEnded, Door: "openSSH", Src: src, Stage: 1, Msg: "198.18.0.2: openSSH: attempt ended at stage 1: timed out"})
	l.Error("warning: %s", "something")
	l.Close()

	type line struct {
		Time  time.Time
		Level *string
		Event string
		Door  string
		Src   string
		Stage int
		Msg   string
	}
	parse := func(name, s string) []line {
		t.Helper()
		var out []line
		for _, ln := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			var l line
			if err := json.Unmarshal([]byte(ln), &l); err != nil {
				t.Fatalf("%s: %q: %v", name, ln, err)
			}
			if !l.Time.Equal(now) || l.Level != nil {
				t.Errorf("%s: %q: time %v (want %v), level %v (want none)", name, ln, l.Time, now, l.Level)
			}
			out = append(out, l)
		}
		return out
	}
	stage := line{Event: "stage", Door: "openSSH", Src: "198.18.0.2", Stage: 1, Msg: "198.18.0.2: openSSH: Stage 1"}
	msg := line{Event: "message", Msg: "listening on lo..."}
	warn := line{Event: "error", Msg: "warning: something"}
	ended := line{Event: "attempt ended", Door: "openSSH", Src: "198.18.0.2", Stage: 1, Msg: "198.18.0.2: openSSH: attempt ended at stage 1: timed out"}
	strip := func(ls []line) []line {
		for i := range ls {
			ls[i].Time, ls[i].Level = time.Time{}, nil
		}
		return ls
	}
	if diff := cmp.Diff([]line{stage, msg}, strip(parse("verbose", verbose.String()))); diff != "" {
		t.Errorf("verbose (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]line{ended}, strip(parse("debug", debug.String()))); diff != "" {
		t.Errorf("debug (-want +got):\n%s", diff)
	}
	file, _ := os.ReadFile(path)
	if diff := cmp.Diff([]line{stage, msg, warn}, strip(parse("log file", string(file)))); diff != "" {
		t.Errorf("log file (-want +got):\n%s", diff)
	}
	if e := errs.String(); e != "warning: something\n" {
		t.Errorf("stderr %q, want the text line", e)
	}
}

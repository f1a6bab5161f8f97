package klog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogFileFormatAndTargets(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "knockd.log")
	var verbose, errs bytes.Buffer
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	l, err := New(Options{Verbose: &verbose, Errors: &errs, LogFile: path, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
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

func TestReopenFollowsRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "knockd.log")
	l, err := New(Options{LogFile: path})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Log("before")
	os.Rename(path, path+".1")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Log("after")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "before") || !strings.Contains(string(cur), "after") || strings.Contains(string(cur), "before") {
		t.Errorf("rotated %q, current %q", old, cur)
	}
}

func TestUnwritableLogFile(t *testing.T) {
	t.Parallel()
	_, err := New(Options{LogFile: "/nonexistent/dir/knockd.log"})
	if err == nil || !strings.Contains(err.Error(), "cannot open log file") {
		t.Errorf("err = %v", err)
	}
}

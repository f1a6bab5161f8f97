// Package klogtest is a fake system logger for tests: a unix datagram
// socket, as /dev/log is, that records what knockd sends it.
package klogtest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Syslog is a bound /dev/log stand-in. It is closed when the test ends.
type Syslog struct {
	// Path is the socket's path.
	Path string
	conn *net.UnixConn
}

// NewSyslog binds a unix datagram socket at a short path of its own (a
// socket path has room for 107 bytes, which t.TempDir may not leave).
func NewSyslog(t testing.TB) *Syslog {
	t.Helper()
	dir, err := os.MkdirTemp("", "klogtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Syslog{Path: filepath.Join(dir, "log")}
	s.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.conn.Close() })
	return s
}

// Close closes the socket and removes it, as a system logger that stops
// does.
func (s *Syslog) Close() {
	s.conn.Close()
	os.Remove(s.Path)
}

// Next returns the next datagram; the test fails when none comes within
// 15 s.
func (s *Syslog) Next(t testing.TB) string {
	t.Helper()
	buf := make([]byte, 65536)
	s.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := s.conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram on %s: %v", s.Path, err)
	}
	return string(buf[:n])
}

// Until returns the datagrams up to and including the first that
// contains last.
func (s *Syslog) Until(t testing.TB, last string) []string {
	t.Helper()
	var got []string
	for {
		got = append(got, s.Next(t))
		if strings.Contains(got[len(got)-1], last) {
			return got
		}
	}
}

// Lines collects the lines of a printf-style log function (Logf), such as
// the Logf options of exec.Runner and control.Listen take. It is safe
// for concurrent use.
type Lines struct {
	mu    sync.Mutex
	lines []string
}

// Logf records one line.
func (l *Lines) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// Get returns the lines recorded so far.
func (l *Lines) Get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

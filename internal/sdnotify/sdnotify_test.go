package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestMessages(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@knock-sdnotify-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)} {
		c := listen(t, name)
		n := New(name)
		n.Ready("2 doors\nlistening")
		if got := recv(t, c); got != "READY=1\nSTATUS=2 doors listening\n" {
			t.Errorf("%s: Ready sent %q", name, got)
		}
		n.Reloading()
		got := recv(t, c)
		usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
		if v, err := strconv.ParseInt(strings.TrimSuffix(usec, "\n"), 10, 64); !ok || err != nil || v <= 0 {
			t.Errorf("%s: Reloading sent %q", name, got)
		}
		n.Stopping()
		if got := recv(t, c); got != "STOPPING=1\nSTATUS=shutting down\n" {
			t.Errorf("%s: Stopping sent %q", name, got)
		}
		n.Watchdog()
		if got := recv(t, c); got != "WATCHDOG=1\n" {
			t.Errorf("%s: Watchdog sent %q", name, got)
		}
	}
	var none *Notifier
	if err := none.Ready("x"); err != nil {
		t.Errorf("a nil Notifier: %v", err)
	}
	if New("") != nil {
		t.Error(`New("") is not nil`)
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tt := range []struct {
		usec, pid string
		want      time.Duration
		ok        bool
	}{
		{"", "", 0, false},
		{"2000000", "", time.Second, true},
		{"2000000", "42", time.Second, true},
		{"2000000", "43", 0, false},
		{"nonsense", "", 0, false},
		{"0", "", 0, false},
	} {
		got, ok := watchdogInterval(tt.usec, tt.pid, 42)
		if got != tt.want || ok != tt.ok {
			t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, %v", tt.usec, tt.pid, got, ok, tt.want, tt.ok)
		}
	}
}

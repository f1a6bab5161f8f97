// Package sdnotify tells systemd how the daemon is doing, by the
// sd_notify protocol: datagrams of NAME=VALUE lines on $NOTIFY_SOCKET.
// Without $NOTIFY_SOCKET every call does nothing.
//
// Its API serves this module's commands and is not yet stable.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends to one notification socket. The zero value, and a nil
// *Notifier, send nothing. Its methods are safe for concurrent use.
type Notifier struct {
	addr string
}

// New returns a Notifier for socket, the value of $NOTIFY_SOCKET: a path,
// or an abstract name beginning with '@'. Empty means none.
func New(socket string) *Notifier {
	if socket == "" {
		return nil
	}
	return &Notifier{addr: socket}
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil when it is unset.
func FromEnv() *Notifier { return New(os.Getenv("NOTIFY_SOCKET")) }

// Send sends one message made of lines ("READY=1", "STATUS=...").
func (n *Notifier) Send(lines ...string) error {
	if n == nil {
		return nil
	}
	// Go's unix socket addresses turn a leading '@' into the abstract
	// namespace's NUL, as systemd means it.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready says that start-up is done (or a reload is), with a status line.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+oneLine(status))
}

// Reloading says that a reload begins; systemd wants the monotonic clock
// with it (Type=notify-reload).
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping says that shutdown begins.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1", "STATUS=shutting down") }

// Status sends a status line alone.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + oneLine(status)) }

// Watchdog sends a keep-alive.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// WatchdogInterval returns how often to send Watchdog: half of
// $WATCHDOG_USEC, when it is set and $WATCHDOG_PID is unset or this
// process's pid. ok is false when no watchdog is asked for.
func WatchdogInterval() (d time.Duration, ok bool) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) (time.Duration, bool) {
	if usec == "" {
		return 0, false
	}
	if pid != "" {
		if p, err := strconv.Atoi(pid); err != nil || p != self {
			return 0, false
		}
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || u <= 0 {
		return 0, false
	}
	return time.Duration(u) * time.Microsecond / 2, true
}

// oneLine keeps a status to one line: a newline would start another
// assignment.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

//go:build unix

package exec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockName is the file in a state directory that the instance using it
// holds locked, with its pid written in it for the message a second
// instance prints.
const lockName = "lock"

// lockState takes the lock of the state directory dir, or says which
// process holds it. The lock lasts as long as the returned file is open;
// the descriptor is close-on-exec, so that no command inherits it.
func lockState(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("exec: opening the lock of state directory %s: %w", dir, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b))); perr == nil {
				holder = fmt.Sprintf("another knockd (pid %d)", pid)
			}
		}
		f.Close()
		return nil, fmt.Errorf("exec: state directory %s is in use by %s: each instance needs its own; "+
			"give this one another with --state-dir or StateDir in [options]", dir, holder)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("exec: locking state directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt(strconv.AppendInt(nil, int64(os.Getpid()), 10), 0)
	}
	return f, nil
}

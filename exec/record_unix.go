//go:build unix

package exec

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// errUntrusted marks a record this daemon must not act on.
var errUntrusted = errors.New("untrusted record")

// checkStateDir refuses, as sshd's StrictModes does, a state directory
// that someone other than this daemon's user could write: a record
// planted there would make the daemon run its command.
func checkStateDir(dir string) error {
	uid := os.Geteuid()
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("exec: state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("exec: state directory %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("exec: state directory %s is owned by uid %d, not by this daemon's user (uid %d), who could then be made to run what is planted there: "+
			"run chown %d %s and chmod go-w %s, or choose another directory with --state-dir or StateDir in [options]",
			dir, st.Uid, uid, uid, dir, dir)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		if fi.Mode()&os.ModeSticky != 0 {
			m |= 0o1000
		}
		return fmt.Errorf("exec: state directory %s is writable by group or others (mode %04o), who could plant records there that this daemon would run: "+
			"run chmod go-w %s, or choose another directory with --state-dir or StateDir in [options]", dir, m, dir)
	}
	return nil
}

// openRecord opens a record for reading and appending, without following
// a symlink and without blocking on a FIFO, and checks that it is a
// regular file of this daemon's user. A record that fails the check is
// reported wrapped in errUntrusted.
func openRecord(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: %s is a symbolic link", errUntrusted, path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", errUntrusted, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not by this daemon's user (uid %d)", errUntrusted, path, st.Uid, os.Geteuid())
	}
	return f, nil
}

// tryLock takes f's lock if no one holds it.
func tryLock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case syscall.EWOULDBLOCK:
			return false, nil
		case syscall.EINTR:
			continue
		}
		return false, err
	}
}

// waitLock takes f's lock, polling until deadline() (which may move
// earlier, at shutdown) has passed. It reports whether it got the lock.
func waitLock(f *os.File, deadline func() time.Time) (bool, error) {
	for {
		ok, err := tryLock(f)
		if ok || err != nil {
			return ok, err
		}
		if time.Now().After(deadline()) {
			return false, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killGroup kills the process group pgid, which every command has to
// itself (it runs in its own session).
func killGroup(pgid int) error {
	if pgid <= 1 {
		return nil
	}
	return syscall.Kill(-pgid, syscall.SIGKILL)
}

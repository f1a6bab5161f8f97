//go:build unix

package knockd

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openTrusted opens the file at path for reading, without following a
// symbolic link and without blocking on a FIFO, and checks that it is a
// regular file of this daemon's user that no one else may write: the
// same rules as for the state directory's other records.
func openTrusted(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("is a symbolic link, which this daemon does not follow: remove it (rm %s)", path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	fail := func(format string, args ...any) (*os.File, error) {
		f.Close()
		return nil, fmt.Errorf(format, args...)
	}
	if !fi.Mode().IsRegular() {
		return fail("is not a regular file: remove it")
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fail("is owned by uid %d, not by this daemon's user (uid %d), who could have written it: check it, then run chown %d %s", st.Uid, os.Geteuid(), os.Geteuid(), path)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fail("is writable by group or others (mode %04o), who could have written it: check it, then run chmod go-w %s", m, path)
	}
	return f, nil
}

// createExclusive creates a new file at path, mode 0600, failing if
// anything, a symbolic link included, is there.
func createExclusive(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
}

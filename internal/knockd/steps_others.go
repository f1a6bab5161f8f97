//go:build !unix

package knockd

import "os"

// openTrusted opens the file at path for reading; where there are no
// owners and modes to check, it checks that it is a regular file.
func openTrusted(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, os.ErrInvalid
	}
	return f, nil
}

// createExclusive creates a new file at path, mode 0600, failing if one
// is there.
func createExclusive(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

package config

import (
	"fmt"
	"io"
	"os"

	"github.com/knock-go/knock/seqderive"
)

// maxSecretFile bounds what is read of a secret file: a base32 secret
// of any sensible length is far shorter.
const maxSecretFile = 4096

// ReadSecret reads the base32 secret of a Sequence_Secret file (see
// seqderive.DecodeSecret) and returns it decoded, with a warning, empty
// when there is none, when the file's mode lets group or others read or
// write it. The file must be a regular file; it is opened without
// blocking, so that a FIFO put in its place is an error at once.
func ReadSecret(path string) (key []byte, warning string, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNonblock, 0)
	if err != nil {
		return nil, "", fmt.Errorf("cannot read the secret: %s", pathErrText(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("cannot read the secret: %s", pathErrText(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("the secret must be in a regular file, not %s", fileKind(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("cannot read the secret: %s", pathErrText(err))
	}
	if len(data) > maxSecretFile {
		return nil, "", fmt.Errorf("the secret file is longer than %d bytes: it should hold the base32 secret alone", maxSecretFile)
	}
	key, err = seqderive.DecodeSecret(string(data))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if m := fi.Mode().Perm(); m&0o066 != 0 {
		warning = fmt.Sprintf("the secret file %s can be read or written by group or others (mode %04o), who could then knock: run chmod go-rwx %s", path, m, path)
	}
	return key, warning, nil
}

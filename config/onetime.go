package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNoSequence is returned (wrapped; test with errors.Is) by NextOneTime
// when a one-time sequence file has no unused line left.
var ErrNoSequence = errors.New("no unused sequence left (every line is blank or starts with #)")

// maxOneTimeLine bounds the length of a sequence line. The longest valid
// sequence, 32 times "65535:udp,", is far shorter; the bound only keeps a
// garbage file from being read into memory whole.
const maxOneTimeLine = 4096

// NextOneTime returns the first usable sequence in the one-time sequence
// file at path whose line starts at byte offset from or later, with that
// offset and its line number (counting from 1).
//
// A line is used up when its first non-blank byte is '#': knockd marks a
// used line by overwriting its first byte (which is why people start each
// line with a space), and a line a person commented out reads the same.
// Blank lines are skipped. A line that does not parse as a Sequence is an
// error naming the file and line. When no usable line remains, the error
// wraps ErrNoSequence. Every error is an *Error.
func NextOneTime(path string, from int64) (seq []Knock, off int64, line int, err error) {
	fail := func(line int, msg string, err error) ([]Knock, int64, int, error) {
		return nil, 0, 0, &Error{File: path, Line: line, Msg: msg, Err: err}
	}
	// A FIFO or a device would block or never end: insist on a file.
	fi, err := os.Stat(path)
	if err != nil {
		return fail(0, "cannot read one-time sequences: "+pathErrText(err), err)
	}
	if !fi.Mode().IsRegular() {
		return fail(0, "one-time sequences must be a regular file, not "+fi.Mode().Type().String(), nil)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(0, "cannot read one-time sequences: "+pathErrText(err), err)
	}
	defer f.Close()

	r := bufio.NewReaderSize(f, maxOneTimeLine)
	var pos int64
	for n := 1; ; n++ {
		start := pos
		text, size, long, err := readLine(r)
		pos += size
		if err != nil && err != io.EOF {
			return fail(n, "cannot read one-time sequences: "+pathErrText(err), err)
		}
		if start >= from && size > 0 {
			trimmed := bytes.TrimSpace(text)
			switch {
			case long && !bytes.HasPrefix(trimmed, []byte("#")):
				return fail(n, fmt.Sprintf("line is longer than %d bytes: it cannot be a sequence", maxOneTimeLine), nil)
			case len(trimmed) == 0 || trimmed[0] == '#':
				// Blank, used or commented out.
			default:
				seq, perr := ParseSequence(string(trimmed))
				if _, ok := sequence08(cTrim(string(text))); perr != nil && !ok {
					perr = with08(perr, "skipped this line")
				}
				if perr != nil {
					return fail(n, perr.Error(), perr)
				}
				return seq, start, n, nil
			}
		}
		if err == io.EOF {
			return fail(0, ErrNoSequence.Error(), ErrNoSequence)
		}
	}
}

// readLine reads one line from r. text is the line without its newline,
// cut to the reader's buffer size (long then reports the cut), and size
// counts every byte consumed, newline included. At the end of the input
// err is io.EOF, possibly with a last unterminated line.
func readLine(r *bufio.Reader) (text []byte, size int64, long bool, err error) {
	for first := true; ; first = false {
		chunk, err := r.ReadSlice('\n')
		size += int64(len(chunk))
		if first {
			text = append([]byte(nil), bytes.TrimSuffix(chunk, []byte("\n"))...)
		}
		if err == bufio.ErrBufferFull {
			long = true
			continue
		}
		return text, size, long, err
	}
}

// pathErrText returns the reason inside a *fs.PathError, without the
// operation and path that the caller already names.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// UseOneTime marks the one-time sequence at byte offset off of the file at
// path as used, the way knockd does: it overwrites the byte at off, the
// first byte of the line, with '#'. The file is changed in place and
// synced before UseOneTime returns; it is never truncated or rewritten, so
// a crash at any moment leaves it either unchanged or with exactly that
// byte changed.
func UseOneTime(path string, off int64) error {
	if off < 0 {
		return fmt.Errorf("config: marking one-time sequence used in %s: negative offset %d", path, off)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("config: marking one-time sequence used: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("config: marking one-time sequence used: %w", err)
	}
	// Writing past the end would grow the file instead of marking a line.
	if off >= fi.Size() {
		f.Close()
		return fmt.Errorf("config: marking one-time sequence used in %s: offset %d is past the end of the file (%d bytes); was it edited?", path, off, fi.Size())
	}
	if _, err := f.WriteAt([]byte{'#'}, off); err != nil {
		f.Close()
		return fmt.Errorf("config: marking one-time sequence used: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("config: marking one-time sequence used: syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("config: marking one-time sequence used: %w", err)
	}
	return nil
}

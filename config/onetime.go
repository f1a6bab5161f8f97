package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"

	"github.com/knock-go/knock/wire"
)

// ErrNoSequence is returned (wrapped; test with errors.Is) by ReadOneTime
// and UseOneTime when a one-time sequence file has no unused line left.
var ErrNoSequence = errors.New("no unused sequence left (every line is blank or starts with #)")

// ErrBadLine is wrapped by the error of ReadOneTime and UseOneTime for a
// one-time sequence line that is not a sequence.
var ErrBadLine = errors.New("not a sequence")

// maxOneTimeLine bounds the length of a sequence line. The longest valid
// sequence, 32 times "65535:udp,", is far shorter; the bound only keeps a
// garbage file from being read into memory whole.
const maxOneTimeLine = 4096

// OneTimeLine is where a one-time sequence was read.
type OneTimeLine struct {
	// Off is the byte offset of the line's first byte.
	Off int64
	// Num is the line number, counting from 1.
	Num int
	// Text is the line as read, without its newline.
	Text string
	// Info is the file that was read, for os.SameFile.
	Info os.FileInfo
	// Reread, set by UseOneTime only, says why the file was read again
	// from its start instead of after the used line; empty when it was
	// not.
	Reread string
}

// ReadOneTime returns the first usable sequence in the one-time sequence
// file at path whose line starts at byte offset from or later, and where
// it was read.
//
// A line is used up when its first non-blank byte is '#': knockd marks a
// used line by overwriting its first byte (which is why people start each
// line with a space), and a line a person commented out reads the same.
// Blank lines are skipped. A line that does not parse as a Sequence is an
// error naming the file and line, wrapping ErrBadLine. When no usable line
// remains, the error wraps ErrNoSequence. The file must be a regular file:
// it is opened without blocking and checked, so that a FIFO or a device
// put in its place is an error at once instead of a read that never ends.
// Every error is an *Error.
func ReadOneTime(path string, from int64) ([]wire.Knock, OneTimeLine, error) {
	f, fi, err := openOneTime(path, os.O_RDONLY, "cannot read one-time sequences")
	if err != nil {
		return nil, OneTimeLine{}, err
	}
	defer f.Close()
	return scanOneTime(path, f, fi, from)
}

// NextOneTime is ReadOneTime, returning the line's offset and number.
func NextOneTime(path string, from int64) (seq []wire.Knock, off int64, line int, err error) {
	seq, at, err := ReadOneTime(path, from)
	return seq, at.Off, at.Num, err
}

// openOneTime opens the one-time sequence file at path with flag, never
// blocking, and insists that it is a regular file. what starts messages.
func openOneTime(path string, flag int, what string) (*os.File, os.FileInfo, error) {
	fail := func(msg string, err error) (*os.File, os.FileInfo, error) {
		return nil, nil, &Error{File: path, Msg: msg, Err: err}
	}
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer, with the matcher and shutdown waiting behind it.
	f, err := os.OpenFile(path, flag|oNonblock, 0)
	if err != nil {
		return fail(what+": "+pathErrText(err), err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(what+": "+pathErrText(err), err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fail(fmt.Sprintf("one-time sequences must be a regular file, not %s: replace it with one", fileKind(fi.Mode())), nil)
	}
	return f, fi, nil
}

// fileKind names the type of a file that is not a regular file.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}

// scanOneTime is ReadOneTime on the open file f, whose Stat is fi.
func scanOneTime(path string, f *os.File, fi os.FileInfo, from int64) ([]wire.Knock, OneTimeLine, error) {
	fail := func(line int, msg string, err error) ([]wire.Knock, OneTimeLine, error) {
		return nil, OneTimeLine{}, &Error{File: path, Line: line, Msg: msg, Err: err}
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, math.MaxInt64), maxOneTimeLine)
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
				return fail(n, fmt.Sprintf("line is longer than %d bytes: it cannot be a sequence", maxOneTimeLine), ErrBadLine)
			case len(trimmed) == 0 || trimmed[0] == '#':
				// Blank, used or commented out.
			default:
				seq, perr := ParseSequence(string(trimmed))
				if _, ok := sequence08(cTrim(string(text))); perr != nil && !ok {
					perr = with08(perr, "skipped this line")
				}
				if perr != nil {
					return fail(n, perr.Error(), fmt.Errorf("%w: %w", ErrBadLine, perr))
				}
				return seq, OneTimeLine{Off: start, Num: n, Text: string(text), Info: fi}, nil
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

// UseOneTime marks the sequence of the one-time door d used, the way
// knockd does, and returns the door's next sequence and where it was read.
//
// The mark overwrites the first byte of the line that d's sequence came
// from (d.OneTimeOffset) with '#', in place, synced before UseOneTime
// returns; the file is never truncated or rewritten, so a crash at any
// moment leaves it either unchanged or with exactly that byte changed.
// The mark is written only where it belongs: the file at d.OneTimeFile
// must still be the file that was read (d.OneTimeInfo, by os.SameFile;
// a file moved in its place is another), and its bytes at the offset
// must still be that line (d.OneTimeText). Otherwise nothing is written:
// the file is read again from its start, skipping and marking lines that
// hold the sequence just used, and the next sequence is its first usable
// line; the returned line's Reread says what happened, for the log.
//
// Errors are those of ReadOneTime, or of writing the mark; a file that is
// not a regular file (a FIFO put in its place) is an error at once.
func UseOneTime(d *Door) ([]wire.Knock, OneTimeLine, error) {
	path := d.OneTimeFile
	f, fi, err := openOneTime(path, os.O_RDWR, "cannot mark the used one-time sequence")
	if err != nil {
		return nil, OneTimeLine{}, err
	}
	defer f.Close()
	var why string
	switch {
	case d.OneTimeInfo == nil || !os.SameFile(fi, d.OneTimeInfo):
		why = "the file was replaced since it was read"
	case !lineAt(f, d.OneTimeOffset, d.OneTimeText):
		why = fmt.Sprintf("the file was changed since it was read (byte %d no longer starts the line %q)", d.OneTimeOffset, d.OneTimeText)
	}
	if why == "" {
		if err := markUsed(path, f, d.OneTimeOffset); err != nil {
			return nil, OneTimeLine{}, err
		}
		return scanOneTime(path, f, fi, d.OneTimeOffset+1)
	}
	for from := int64(0); ; {
		seq, at, err := scanOneTime(path, f, fi, from)
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Msg = why + "; read again: " + e.Msg
			}
			return nil, OneTimeLine{}, err
		}
		if !slices.Equal(seq, d.Sequence) {
			at.Reread = why
			return seq, at, nil
		}
		// The sequence just used, in the new file too: spend it.
		if err := markUsed(path, f, at.Off); err != nil {
			return nil, OneTimeLine{}, err
		}
		from = at.Off + 1
	}
}

// lineAt reports whether a line of f starts at off and reads text.
func lineAt(f *os.File, off int64, text string) bool {
	if off < 0 {
		return false
	}
	// The byte before (a newline, unless off is 0), the line, and the
	// byte after (a newline, unless the file ends there).
	start := max(off-1, 0)
	buf := make([]byte, int(off-start)+len(text)+1)
	n, err := f.ReadAt(buf, start)
	if err != nil && err != io.EOF {
		return false
	}
	buf = buf[:n]
	if off > 0 {
		if len(buf) == 0 || buf[0] != '\n' {
			return false
		}
		buf = buf[1:]
	}
	if !bytes.HasPrefix(buf, []byte(text)) {
		return false
	}
	rest := buf[len(text):]
	return len(rest) == 0 || rest[0] == '\n'
}

// markUsed writes '#' at off of f, the file at path, and syncs it.
func markUsed(path string, f *os.File, off int64) error {
	if _, err := f.WriteAt([]byte{'#'}, off); err != nil {
		return fmt.Errorf("config: marking one-time sequence used: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("config: marking one-time sequence used: syncing %s: %w", path, err)
	}
	return nil
}

// PeekOneTime is UseOneTime without the mark: it returns the sequence
// that follows d's in its file, opened read-only, and writes nothing, so
// that knockd --replay can follow a one-time door through a capture and
// leave the file as it found it. The file is not checked for changes
// since it was read, as nothing is written to it.
func PeekOneTime(d *Door) ([]wire.Knock, OneTimeLine, error) {
	f, fi, err := openOneTime(d.OneTimeFile, os.O_RDONLY, "cannot read the one-time sequences")
	if err != nil {
		return nil, OneTimeLine{}, err
	}
	defer f.Close()
	return scanOneTime(d.OneTimeFile, f, fi, d.OneTimeOffset+1)
}

package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/wire"
)

// writeTemp writes data to a new file and returns its path.
func writeTemp(t testing.TB, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sequences.seq")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNextOneTime(t *testing.T) {
	type result struct {
		Seq  []wire.Knock
		Off  int64
		Line int
	}
	tests := []struct {
		name string
		data string
		from int64
		want result
	}{
		{"tutorial file", " 6110,6120,6130\n 6140,6150,6160\n", 0,
			result{seq(6110, 6120, 6130), 0, 1}},
		{"first line used", "#6110,6120,6130\n 6140,6150,6160\n", 0,
			result{seq(6140, 6150, 6160), 16, 2}},
		{"comments, blank lines and an indented comment", "# sequences\n\n   \n  # 1,2,3\n\t7:udp,8\n", 0,
			result{seq(-7, 8), 27, 5}},
		{"from the start of a line", " 1\n 2\n 3\n", 3,
			result{seq(2), 3, 2}},
		{"from inside a line, as after UseOneTime(off) at off+1", " 1\n 2\n 3\n", 4,
			result{seq(3), 6, 3}},
		{"no final newline", "#1\n 2", 0,
			result{seq(2), 3, 2}},
		{"CRLF", "#1\r\n 2,3:udp\r\n", 0,
			result{seq(2, -3), 4, 2}},
		{"line without a leading space", "6110,6120\n", 0,
			result{seq(6110, 6120), 0, 1}},
		{"long comment line", "#" + strings.Repeat("x", 3*maxOneTimeLine) + "\n 5\n", 0,
			result{seq(5), int64(3*maxOneTimeLine + 2), 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, tt.data)
			s, off, line, err := NextOneTime(path, tt.from)
			if err != nil {
				t.Fatalf("NextOneTime: %v", err)
			}
			if diff := cmp.Diff(tt.want, result{s, off, line}); diff != "" {
				t.Errorf("NextOneTime(%q, %d) mismatch (-want +got):\n%s", tt.data, tt.from, diff)
			}
		})
	}
}

func TestNextOneTimeErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		from int64
		is   error
		msg  string
	}{
		{"empty file", "", 0, ErrNoSequence, ": no unused sequence left"},
		{"all used", "#1\n#2\n\n", 0, ErrNoSequence, ": no unused sequence left"},
		{"past the last usable line", " 1\n#2\n", 1, ErrNoSequence, ": no unused sequence left"},
		{"from past the end", " 1\n", 100, ErrNoSequence, ": no unused sequence left"},
		{"bad line", "#1\n\n 6110,abc\n", 0, nil, `:3: "abc" is not a port number`},
		{"too many ports", strings.Repeat("1,", 40) + "1\n", 0, nil, ":1: sequence has 41 ports"},
		{"inline comment", " 1,2 # first\n", 0, nil, `:1: "2 # first" is not a port number (a comment must be on a line of its own)`},
		{"very long line", strings.Repeat("1", 2*maxOneTimeLine) + "\n", 0, nil, ":1: line is longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, tt.data)
			s, _, _, err := NextOneTime(path, tt.from)
			if err == nil {
				t.Fatalf("NextOneTime = %v, want an error", s)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if want := path + tt.msg; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error is a %T, not an *Error", err)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.seq")
		_, _, _, err := NextOneTime(path, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
		}
		if want := path + ": cannot read one-time sequences: no such file or directory"; err == nil || err.Error() != want {
			t.Errorf("error = %v, want %q", err, want)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		_, _, _, err := NextOneTime(dir, 0)
		if err == nil || !strings.Contains(err.Error(), "must be a regular file") {
			t.Errorf("error = %v, want a regular-file error", err)
		}
	})
}

// oneTimeDoor returns a door on the one-time file at path, at its first
// usable line from byte from, as Parse and the matcher make one.
func oneTimeDoor(t *testing.T, path string, from int64) *Door {
	t.Helper()
	s, at, err := ReadOneTime(path, from)
	if err != nil {
		t.Fatal(err)
	}
	return &Door{Name: "d", OneTimeFile: path, Sequence: s, OneTimeOffset: at.Off, OneTimeText: at.Text, OneTimeInfo: at.Info}
}

// use is UseOneTime on d, moving d on to the next sequence as the matcher
// does.
func use(t *testing.T, d *Door) (OneTimeLine, error) {
	t.Helper()
	s, at, err := UseOneTime(d)
	if err == nil {
		d.Sequence, d.OneTimeOffset, d.OneTimeText, d.OneTimeInfo = s, at.Off, at.Text, at.Info
	}
	return at, err
}

// moveOver writes data to a new file and moves it over path, as
// "mv new path" does.
func moveOver(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUseOneTime(t *testing.T) {
	const data = " 6110,6120,6130\n 6140,6150,6160\n"
	path := writeTemp(t, data)

	// The tutorial's session: knock the first sequence, find it
	// commented out, and the second one in use.
	d := oneTimeDoor(t, path, 0)
	if diff := cmp.Diff(seq(6110, 6120, 6130), d.Sequence); diff != "" {
		t.Fatalf("first sequence mismatch (-want +got):\n%s", diff)
	}
	at, err := use(t, d)
	if err != nil {
		t.Fatalf("UseOneTime: %v", err)
	}
	if want := "#6110,6120,6130\n 6140,6150,6160\n"; readFile(t, path) != want {
		t.Fatalf("after UseOneTime the file holds %q, want %q", readFile(t, path), want)
	}
	if diff := cmp.Diff(seq(6140, 6150, 6160), d.Sequence); diff != "" || at.Off != 16 || at.Num != 2 || at.Reread != "" {
		t.Fatalf("second sequence = %v at %+v, want %v at 16 line 2", d.Sequence, at, seq(6140, 6150, 6160))
	}
	// What the tutorial asks: what happens when none is left?
	if _, err := use(t, d); !errors.Is(err, ErrNoSequence) {
		t.Errorf("UseOneTime of the last = %v, want ErrNoSequence", err)
	}
	if _, _, _, err := NextOneTime(path, 0); !errors.Is(err, ErrNoSequence) {
		t.Errorf("NextOneTime from 0 after the last = %v, want ErrNoSequence", err)
	}
	if want := "#6110,6120,6130\n#6140,6150,6160\n"; readFile(t, path) != want {
		t.Errorf("the file holds %q, want %q", readFile(t, path), want)
	}
}

func TestUseOneTimeOneByte(t *testing.T) {
	// Every byte but the first of the used line must stay as it was,
	// and the length too, and the file must be the same file.
	data := []byte(" 1\n 2\r\n\n3 \n 4")
	for _, off := range []int64{0, 3, 8, 11} {
		path := writeTemp(t, string(data))
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		d := oneTimeDoor(t, path, off)
		if d.OneTimeOffset != off {
			t.Fatalf("line at %d read at %d", off, d.OneTimeOffset)
		}
		if _, err := use(t, d); err != nil && !errors.Is(err, ErrNoSequence) {
			t.Fatalf("UseOneTime(%d): %v", off, err)
		}
		want := bytes.Clone(data)
		want[off] = '#'
		if got := readFile(t, path); got != string(want) {
			t.Errorf("UseOneTime(%d): file holds %q, want %q", off, got, want)
		}
		fi2, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(fi, fi2) {
			t.Errorf("UseOneTime(%d) replaced the file instead of writing in place", off)
		}
	}
}

func TestUseOneTimeMissingFile(t *testing.T) {
	path := writeTemp(t, " 1\n")
	d := oneTimeDoor(t, path, 0)
	os.Remove(path)
	if _, err := use(t, d); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("UseOneTime on a missing file = %v, want fs.ErrNotExist", err)
	}
}

// A file moved in place of the one that was read is another file: its
// bytes at the old offset are not the used line, and marking there broke
// a port of the new file (" 17001,1800#,19001"). Nothing is written; the
// new file's first usable line is next.
func TestUseOneTimeReplacedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "otp.txt")
	if err := os.WriteFile(path, []byte("# used\n#6110,6120\n 6210,6220\n 6310,6320\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := oneTimeDoor(t, path, 0)
	const fresh = " 17001,18001,19001\n 17002,18002,19002\n"
	moveOver(t, path, fresh)
	at, err := use(t, d)
	if err != nil {
		t.Fatalf("UseOneTime: %v", err)
	}
	if got := readFile(t, path); got != fresh {
		t.Errorf("the new file holds %q, want it untouched: %q", got, fresh)
	}
	if diff := cmp.Diff(seq(17001, 18001, 19001), d.Sequence); diff != "" || at.Off != 0 || at.Num != 1 {
		t.Errorf("next sequence %v at %+v, want the new file's first line (-want +got):\n%s", d.Sequence, at, diff)
	}
	if !strings.Contains(at.Reread, "replaced") {
		t.Errorf("Reread = %q, want it to say the file was replaced", at.Reread)
	}
	// The new file's line is then marked where it is.
	if _, err := use(t, d); err != nil {
		t.Fatalf("UseOneTime: %v", err)
	}
	if want := "#17001,18001,19001\n 17002,18002,19002\n"; readFile(t, path) != want {
		t.Errorf("the file holds %q, want %q", readFile(t, path), want)
	}
}

// A file changed in place (an editor that writes over it) no longer
// holds the used line at its offset: nothing is written there.
func TestUseOneTimeChangedBytes(t *testing.T) {
	for _, tt := range []struct {
		name, after, want string
		next              []wire.Knock
	}{
		{"line moved", "# note\n 6110,6120\n 6210,6220\n", "# note\n#6110,6120\n 6210,6220\n", seq(6210, 6220)},
		{"other line there", " 7110,7120\n 7210,7220\n", " 7110,7120\n 7210,7220\n", seq(7110, 7120)},
		{"line made longer", " 6110,61201\n 6210\n", " 6110,61201\n 6210\n", seq(6110, 61201)},
		{"file cut short", " 61", " 61", seq(61)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTemp(t, " 6110,6120\n 6210,6220\n")
			d := oneTimeDoor(t, path, 0)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(tt.after); err != nil {
				t.Fatal(err)
			}
			f.Close()
			at, err := use(t, d)
			if err != nil {
				t.Fatalf("UseOneTime: %v", err)
			}
			if got := readFile(t, path); got != tt.want {
				t.Errorf("the file holds %q, want %q", got, tt.want)
			}
			if diff := cmp.Diff(tt.next, d.Sequence); diff != "" {
				t.Errorf("next sequence (-want +got):\n%s", diff)
			}
			if !strings.Contains(at.Reread, "changed") {
				t.Errorf("Reread = %q, want it to say the file was changed", at.Reread)
			}
		})
	}
}

// A FIFO in place of the file fails at once: reading or marking it used
// to wait for a writer (or reader), with the matcher, SIGTERM and every
// door behind it.
func TestOneTimeFIFO(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no FIFOs")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "otp.txt")
	if err := os.WriteFile(path, []byte(" 6110,6120\n 6210\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := oneTimeDoor(t, path, 0)
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := use(t, d); err == nil || !strings.Contains(err.Error(), "must be a regular file, not a named pipe") {
			t.Errorf("UseOneTime on a FIFO = %v, want a regular-file error", err)
		}
		if _, _, err := ReadOneTime(path, 0); err == nil || !strings.Contains(err.Error(), "must be a regular file, not a named pipe") {
			t.Errorf("ReadOneTime on a FIFO = %v, want a regular-file error", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// Unblock the open so that the test can end.
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("a FIFO in place of the one-time file blocked")
	}
}

// When the new file's first line is the sequence just used, that line is
// spent too, so that the knocker cannot use it again.
func TestUseOneTimeReplacedWithSameSequence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "otp.txt")
	if err := os.WriteFile(path, []byte(" 6110,6120\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := oneTimeDoor(t, path, 0)
	moveOver(t, path, "# new\n 6110,6120\n 6210\n")
	if _, err := use(t, d); err != nil {
		t.Fatalf("UseOneTime: %v", err)
	}
	if want := "# new\n#6110,6120\n 6210\n"; readFile(t, path) != want {
		t.Errorf("the file holds %q, want %q", readFile(t, path), want)
	}
	if diff := cmp.Diff(seq(6210), d.Sequence); diff != "" {
		t.Errorf("next sequence (-want +got):\n%s", diff)
	}
}

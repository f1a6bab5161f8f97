package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
		Seq  []Knock
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

func TestUseOneTime(t *testing.T) {
	const data = " 6110,6120,6130\n 6140,6150,6160\n"
	path := writeTemp(t, data)

	// The tutorial's session: knock the first sequence, find it
	// commented out, and the second one in use.
	seq1, off, _, err := NextOneTime(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seq(6110, 6120, 6130), seq1); diff != "" {
		t.Fatalf("first sequence mismatch (-want +got):\n%s", diff)
	}
	if err := UseOneTime(path, off); err != nil {
		t.Fatalf("UseOneTime: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "#6110,6120,6130\n 6140,6150,6160\n"; string(got) != want {
		t.Fatalf("after UseOneTime the file holds %q, want %q", got, want)
	}

	seq2, off2, line2, err := NextOneTime(path, off+1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seq(6140, 6150, 6160), seq2); diff != "" || off2 != 16 || line2 != 2 {
		t.Fatalf("second sequence = %v at %d line %d, want %v at 16 line 2", seq2, off2, line2, seq(6140, 6150, 6160))
	}
	if err := UseOneTime(path, off2); err != nil {
		t.Fatalf("UseOneTime: %v", err)
	}
	// What the tutorial asks: what happens when none is left?
	if _, _, _, err := NextOneTime(path, off2+1); !errors.Is(err, ErrNoSequence) {
		t.Errorf("NextOneTime after the last = %v, want ErrNoSequence", err)
	}
	if _, _, _, err := NextOneTime(path, 0); !errors.Is(err, ErrNoSequence) {
		t.Errorf("NextOneTime from 0 after the last = %v, want ErrNoSequence", err)
	}
	got, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "#6110,6120,6130\n#6140,6150,6160\n"; string(got) != want {
		t.Errorf("the file holds %q, want %q", got, want)
	}
}

func TestUseOneTimeOneByte(t *testing.T) {
	// Every byte but the one at off must stay as it was, and the length
	// too.
	data := []byte(" 1\n 2\n 3 \n")
	for off := range int64(len(data)) {
		path := writeTemp(t, string(data))
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := UseOneTime(path, off); err != nil {
			t.Fatalf("UseOneTime(%d): %v", off, err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(data)
		want[off] = '#'
		if !bytes.Equal(got, want) {
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

func TestUseOneTimeErrors(t *testing.T) {
	path := writeTemp(t, " 1\n")
	for _, off := range []int64{-1, 3, 1000} {
		if err := UseOneTime(path, off); err == nil {
			t.Errorf("UseOneTime(%d) succeeded", off)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != " 1\n" {
		t.Errorf("failed calls changed the file to %q", got)
	}
	if err := UseOneTime(filepath.Join(t.TempDir(), "nope"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("UseOneTime on a missing file = %v, want fs.ErrNotExist", err)
	}
}

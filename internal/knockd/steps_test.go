package knockd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/seqderive"
)

func derivedDoorFor(t *testing.T, name, secret string) *config.Door {
	t.Helper()
	key, err := seqderive.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &config.Door{Name: name, SecretFile: "/x", Secret: key, Derive: seqderive.Defaults()}
}

func TestStepStoreSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	a := derivedDoorFor(t, "a", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	b := derivedDoorFor(t, "b", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
	s, err := newStepStore(dir, []*config.Door{a, b})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []uint64{7, 5, 9} {
		if err := s.Use(a, c); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, stepsName(a)))
	if err != nil {
		t.Fatal(err)
	}
	if want := stepsHeader + "\n5\n7\n9\n"; string(data) != want {
		t.Errorf("record = %q, want %q", data, want)
	}
	if fi, _ := os.Stat(filepath.Join(dir, stepsName(a))); fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v, want 0600", fi.Mode().Perm())
	}
	s2, err := newStepStore(dir, []*config.Door{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Used(a); !slices.Equal(got, []uint64{5, 7, 9}) {
		t.Errorf("after a restart, used steps of a = %v", got)
	}
	if got := s2.Used(b); len(got) != 0 {
		t.Errorf("another secret shares the record: %v", got)
	}
	// The same secret and step under another name shares it.
	a2 := *a
	a2.Name = "renamed"
	if got := s2.Used(&a2); !slices.Equal(got, []uint64{5, 7, 9}) {
		t.Errorf("a renamed door lost its record: %v", got)
	}
	for i := range 100 {
		s2.Use(a, uint64(100+i))
	}
	if got := s2.Used(a); len(got) != maxRecordedSteps || got[len(got)-1] != 199 {
		t.Errorf("after many uses, %d steps kept ending in %d", len(got), got[len(got)-1])
	}
}

func TestStepStoreRefusesUntrustedRecords(t *testing.T) {
	a := derivedDoorFor(t, "a", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
	for _, tc := range []struct {
		name  string
		setup func(path string) error
		want  string
	}{
		{"writable by others", func(p string) error {
			if err := os.WriteFile(p, []byte(stepsHeader+"\n1\n"), 0o600); err != nil {
				return err
			}
			return os.Chmod(p, 0o666)
		}, "writable by group or others (mode 0666)"},
		{"a symbolic link", func(p string) error {
			target := p + ".real"
			if err := os.WriteFile(target, []byte(stepsHeader+"\n1\n"), 0o600); err != nil {
				return err
			}
			return os.Symlink(target, p)
		}, "symbolic link"},
		{"damaged", func(p string) error { return os.WriteFile(p, []byte(stepsHeader+"\nx\n"), 0o600) }, "is damaged"},
		{"no header", func(p string) error { return os.WriteFile(p, []byte("1\n"), 0o600) }, "no header line"},
		{"a directory", func(p string) error { return os.Mkdir(p, 0o700) }, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tc.setup(filepath.Join(dir, stepsName(a))); err != nil {
				t.Fatal(err)
			}
			_, err := newStepStore(dir, []*config.Door{a})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "door a") {
				t.Errorf("newStepStore = %v, want an error about door a saying %q", err, tc.want)
			}
		})
	}
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		p := filepath.Join(dir, stepsName(a))
		if err := os.WriteFile(p, []byte(stepsHeader+"\n1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := newStepStore(dir, []*config.Door{a}); err == nil || !strings.Contains(err.Error(), "is owned by uid 65534") {
			t.Errorf("a record of another user: %v", err)
		}
	} else {
		t.Log("not root: the record of another user is not tried")
	}
	if _, err := newStepStore("", []*config.Door{a}); err == nil {
		t.Error("no state directory: no error")
	}
}

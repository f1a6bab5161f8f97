package knockd

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestStateName(t *testing.T) {
	if got := stateName("/etc/knockd.conf"); got != "etc_knockd.conf-59fb8fc5" {
		t.Errorf("stateName(/etc/knockd.conf) = %q", got)
	}
	// Paths that sanitise alike still get their own directories.
	a, b := stateName("/a-b/c.conf"), stateName("/a_b/c.conf")
	if a == b || !strings.HasPrefix(a, "a-b_c.conf-") {
		t.Errorf("stateName: %q and %q", a, b)
	}
	// A relative path names the same state as its absolute form.
	abs, _ := filepath.Abs("x.conf")
	if stateName("x.conf") != stateName(abs) {
		t.Errorf("relative and absolute paths differ")
	}
	if n := stateName("/" + strings.Repeat("d/", 300) + "k.conf"); len(n) > 255 {
		t.Errorf("name of %d bytes: too long for a file name", len(n))
	}
}

func TestStateDirDefaults(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/knockd:/other")
	if got, _ := stateDir("", "", "/etc/knockd.conf"); got != "/var/lib/knockd/etc_knockd.conf-59fb8fc5" {
		t.Errorf("with STATE_DIRECTORY: %q", got)
	}
	if got, _ := stateDir("", "/srv/state", "/etc/knockd.conf"); got != "/srv/state" {
		t.Errorf("StateDir: %q", got)
	}
	if got, _ := stateDir("/flag", "/srv/state", "/etc/knockd.conf"); got != "/flag" {
		t.Errorf("--state-dir: %q", got)
	}
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("XDG_STATE_HOME", "/xdg")
	want := "/xdg/knockd/etc_knockd.conf-59fb8fc5"
	if got, _ := stateDir("", "", "/etc/knockd.conf"); got != want && got != "/var/lib/knockd/etc_knockd.conf-59fb8fc5" {
		t.Errorf("default: %q", got)
	}
}

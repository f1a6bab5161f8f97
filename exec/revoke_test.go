package exec

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/klog/klogtest"
)

func TestPendingAndRevoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	state := filepath.Join(dir, "state")
	lb := &klogtest.Lines{}
	r, err := New(Options{Logf: lb.Logf, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	ssh := &config.Door{Name: "ssh", CmdTimeout: time.Hour, StartCommand: "echo open %IP% >> " + out, StopCommand: "echo close %IP% >> " + out}
	web := &config.Door{Name: "web", CmdTimeout: 2 * time.Hour, StartCommand: "echo web %IP% >> " + out, StopCommand: "echo unweb %IP% >> " + out}
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	now := time.Now().Round(0)
	r.Open(ssh, a, "198.18.0.2", now)
	r.Open(web, a, "198.18.0.2", now)
	r.Open(ssh, b, "198.18.0.3", now)
	waitFor(t, "three start commands", func() bool { return len(r.Pending()) == 3 && r.Stats().Running == 0 && len(records(state)) == 3 })

	got := r.Pending()
	want := []Opening{
		{Door: "ssh", Src: a, Label: "198.18.0.2", Since: now, Until: now.Add(time.Hour), Stop: "echo close 198.18.0.2 >> " + out},
		{Door: "ssh", Src: b, Label: "198.18.0.3", Since: now, Until: now.Add(time.Hour), Stop: "echo close 198.18.0.3 >> " + out},
		{Door: "web", Src: a, Label: "198.18.0.2", Since: now, Until: now.Add(2 * time.Hour), Stop: "echo unweb 198.18.0.2 >> " + out},
	}
	// The order of two openings due at once is the door's, then any.
	if got[0].Src != a {
		got[0], got[1] = got[1], got[0]
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("Pending (-want +got):\n%s", diff)
	}

	if n := len(r.Revoke(a, "ssh")); n != 1 {
		t.Fatalf("Revoke(a, ssh) closed %d openings, want 1", n)
	}
	waitFor(t, "the stop command", func() bool { return len(records(state)) == 2 && r.Stats().Running == 0 })
	if n := len(r.Revoke(a, "ssh")); n != 0 {
		t.Errorf("a second Revoke(a, ssh) closed %d openings, want 0", n)
	}
	if n := len(r.Revoke(netip.MustParseAddr("198.18.0.9"), "")); n != 0 {
		t.Errorf("Revoke of a stranger closed %d openings", n)
	}
	if n := len(r.Revoke(netip.MustParseAddr("::ffff:198.18.0.2"), "")); n != 1 {
		t.Errorf("Revoke(a as IPv4-mapped) closed %d openings, want web's", n)
	}
	waitFor(t, "the second stop command", func() bool { return len(records(state)) == 1 && r.Stats().Running == 0 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each stop command ran once: the revoked ones now, b's at Close.
	wantOut := "open 198.18.0.2\nweb 198.18.0.2\nopen 198.18.0.3\nclose 198.18.0.2\nunweb 198.18.0.2\nclose 198.18.0.3\n"
	if diff := cmp.Diff(sortLines(wantOut), sortLines(readFile(t, out))); diff != "" {
		t.Errorf("commands run (-want +got):\n%s", diff)
	}
	var revoked []string
	for _, l := range lb.Get() {
		if strings.HasSuffix(l, ": revoked") {
			revoked = append(revoked, l)
		}
	}
	if diff := cmp.Diff([]string{"198.18.0.2: ssh: revoked", "198.18.0.2: web: revoked"}, revoked); diff != "" {
		t.Errorf("revoked lines (-want +got):\n%s", diff)
	}
}

// sortLines sorts the lines of s: commands of different doors run side by
// side.
func sortLines(s string) []string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(l)
	return l
}

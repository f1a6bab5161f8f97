package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/klog/klogtest"
)

// TestRecordKind: a pending stop command's record says it is of kind
// command, with the command as its data.
func TestRecordKind(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	r, err := New(Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	d := &config.Door{Name: "d", StartCommand: "true", StopCommand: "echo %IP%", CmdTimeout: time.Hour}
	r.Open(d, netip.MustParseAddr("198.51.100.7"), "198.51.100.7", time.Now())
	var rec map[string]any
	waitFor(t, "the record", func() bool {
		names := records(state)
		if len(names) != 1 {
			return false
		}
		b, err := os.ReadFile(filepath.Join(state, names[0]))
		line, _, _ := strings.Cut(string(b), "\n")
		return err == nil && json.Unmarshal([]byte(line), &rec) == nil
	})
	if rec["kind"] != "command" || rec["cmd"] != "echo 198.51.100.7" || rec["door"] != "d" {
		t.Errorf("record %v: want kind command, cmd echo 198.51.100.7, door d", rec)
	}
	// Closing runs the stop command (shutdown runs what is pending).
	r.Close(context.Background())
}

// TestRecoverKinds: a record written before kinds existed is read as a
// command and run; one of a kernel set is removed with nothing run (the
// kernel expires the element); one of a kind unknown here is left in
// place, never run, and logged.
func TestRecoverKinds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	out := filepath.Join(dir, "out")
	os.MkdirAll(state, 0o700)
	due := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	files := map[string]string{
		"1-1-1.stop": fmt.Sprintf(`{"door":"old","label":"198.51.100.7","cmd":"echo old >> %s","due":%q}`, out, due),
		"1-1-2.stop": fmt.Sprintf(`{"door":"nft","label":"198.51.100.8","kind":"nft","set":"inet knockd ssh4","addr":"198.51.100.8","due":%q}`, due),
		"1-1-3.stop": fmt.Sprintf(`{"door":"ipset","label":"198.51.100.9","kind":"ipset","set":"knock4","addr":"198.51.100.9","due":%q}`, due),
		"1-1-4.stop": fmt.Sprintf(`{"door":"future","label":"198.51.100.10","kind":"bpf","cmd":"echo future >> %s","due":%q}`, out, due),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(state, name), []byte(data+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lb := &klogtest.Lines{}
	r, err := New(Options{StateDir: state, Logf: lb.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Recover(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old record's command", func() bool { return readFile(t, out) == "old\n" })
	waitFor(t, "the records handled", func() bool { return slices.Equal(records(state), []string{"1-1-4.stop"}) })
	r.Close(context.Background())
	if got := readFile(t, out); got != "old\n" {
		t.Errorf("commands run: %q, want only the old record's", got)
	}
	want := `ignoring pending record ` + filepath.Join(state, "1-1-4.stop") + `: it closes an opening of kind "bpf", which this version does not know; left in place`
	if !slices.Contains(lb.Get(), want) {
		t.Errorf("log %q: want %q", lb.Get(), want)
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
)

const testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// secretDir writes secret files into a temporary directory: good (0600),
// open (0644), short, bad and empty.
func secretDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, f := range map[string]struct {
		text string
		mode os.FileMode
	}{
		"good":  {testSecret + "\n", 0o600},
		"open":  {testSecret + "\n", 0o644},
		"short": {"JBSWY3DPEHPK3PXP\n", 0o600},
		"bad":   {"not base32!\n", 0o600},
		"empty": {"\n", 0o600},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(f.text), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseDerived(t *testing.T) {
	dir := secretDir(t)
	conf := "[ssh]\nSequence_Secret = " + dir + "/good\ncommand = x\n"
	c, err := Parse("knockd.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Doors[0]
	if d.SecretFile != dir+"/good" || len(d.Secret) != 20 || len(d.Sequence) != 0 {
		t.Errorf("door = file %q, secret of %d bytes, sequence %v", d.SecretFile, len(d.Secret), d.Sequence)
	}
	if diff := cmp.Diff(seqderive.Defaults(), d.Derive); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	// The README's vector, through Derived.
	nd := d.Derived(58907520)
	want := []wire.Knock{{Port: 25702, Proto: wire.TCP}, {Port: 26857, Proto: wire.TCP}, {Port: 21681, Proto: wire.TCP}}
	if diff := cmp.Diff(want, nd.Sequence); diff != "" || nd.Step != 58907520 || len(d.Sequence) != 0 {
		t.Errorf("Derived: step %d, sequence (-want +got):\n%s", nd.Step, diff)
	}

	conf = "[ssh]\nsequence_secret = " + dir + "/good\nSEQUENCE_LENGTH = 5\nSequence_Ports = 40000-40100\nSequence_Step = 2\nSequence_Proto = UDP\ncommand = x\n"
	if c, err = Parse("knockd.conf", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	wantP := seqderive.Params{Length: 5, Low: 40000, High: 40100, Step: 2 * time.Second, Proto: wire.UDP}
	if diff := cmp.Diff(wantP, c.Doors[0].Derive); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
}

func TestParseDerivedErrors(t *testing.T) {
	dir := secretDir(t)
	r := strings.NewReplacer("$DIR", dir)
	for _, tt := range []struct {
		name, conf string
		line       int
		key, msg   string
	}{
		{"missing secret", "[d]\nSequence_Secret = $DIR/nope\n", 2, "Sequence_Secret", "cannot read the secret: no such file or directory"},
		{"empty secret", "[d]\nSequence_Secret = $DIR/empty\n", 2, "Sequence_Secret", "the secret is empty"},
		{"bad secret", "[d]\nSequence_Secret = $DIR/bad\n", 2, "Sequence_Secret", "is not base32"},
		{"short secret", "[d]\nSequence_Secret = $DIR/short\n", 2, "Sequence_Secret", "at least 16 are needed"},
		{"secret is a directory", "[d]\nSequence_Secret = $DIR\n", 2, "Sequence_Secret", "not a directory"},
		{"with Sequence", "[d]\nSequence = 1\nSequence_Secret = $DIR/good\n", 2, "Sequence", "one of Sequence, One_Time_Sequences and Sequence_Secret (line 3)"},
		{"length without secret", "[d]\nSequence = 1\nSequence_Length = 4\n", 3, "Sequence_Length", "only a door with Sequence_Secret"},
		{"length 0", "[d]\nSequence_Secret = $DIR/good\nSequence_Length = 0\n", 3, "Sequence_Length", "0 is out of range"},
		{"length 33", "[d]\nSequence_Secret = $DIR/good\nSequence_Length = 33\n", 3, "Sequence_Length", "at most 32"},
		{"bad range", "[d]\nSequence_Secret = $DIR/good\nSequence_Ports = 9000\n", 3, "Sequence_Ports", `"9000" is not a port range`},
		{"narrow range", "[d]\nSequence_Secret = $DIR/good\nSequence_Ports = 9000-9001\n", 3, "Sequence_Ports", "fewer than the 3 distinct ports"},
		{"short step", "[d]\nSequence_Secret = $DIR/good\nSequence_Step = 1\n", 3, "Sequence_Step", "too short a step: give at least 2"},
		{"bad step", "[d]\nSequence_Secret = $DIR/good\nSequence_Step = 30s\n", 3, "Sequence_Step", "not a whole number of seconds"},
		{"bad proto", "[d]\nSequence_Secret = $DIR/good\nSequence_Proto = icmp\n", 3, "Sequence_Proto", "write tcp or udp"},
		{"no value", "[d]\nSequence_Secret =\n", 2, "Sequence_Secret", "no value: write Sequence_Secret = /etc/knockd/ssh.secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("knockd.conf", []byte(r.Replace(tt.conf)))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			if e.Line != tt.line || e.Key != tt.key || e.Section != "d" || !strings.Contains(e.Msg, r.Replace(tt.msg)) {
				t.Errorf("error %q, want line %d, key %s, containing %q", err, tt.line, tt.key, tt.msg)
			}
		})
	}
}

func TestSecretModeWarning(t *testing.T) {
	dir := secretDir(t)
	c, err := Parse("knockd.conf", []byte("[d]\nSequence_Secret = "+dir+"/open\ncommand = x\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"knockd.conf:2: [d] Sequence_Secret: the secret file " + dir + "/open can be read or written by group or others (mode 0644), who could then knock: run chmod go-rwx " + dir + "/open"}
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

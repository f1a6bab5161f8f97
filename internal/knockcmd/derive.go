package knockcmd

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/knock-go/knock/seqderive"
)

// Derive is how the client computes the sequence of a time-derived door
// (the daemon's Sequence_Secret): the secret file and the door's
// Sequence_Length, Sequence_Ports, Sequence_Step and Sequence_Proto.
type Derive struct {
	// SecretFile is the file holding the secret in base32 (--secret-file).
	SecretFile string
	// Params are the door's parameters (--length, --ports, --step,
	// --proto); seqderive.Defaults gives the door's defaults.
	Params seqderive.Params
	// Time is the time to compute the sequence for (--time); the zero
	// value means now.
	Time time.Time
}

// maxSecretFile bounds what is read of a secret file.
const maxSecretFile = 4096

// Ports reads the secret and returns the sequence of the step of d.Time
// (or now), as "port:proto" arguments for Run. A secret that cannot be
// read or decoded, and parameters out of range, are errors.
func (d Derive) Ports() ([]string, error) {
	if err := d.Params.Check(); err != nil {
		return nil, fmt.Errorf("knock: %w", err)
	}
	f, err := os.Open(d.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("knock: cannot read the secret: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("knock: %s: the secret must be in a regular file", d.SecretFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("knock: cannot read the secret: %w", err)
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("knock: %s is longer than %d bytes: it should hold the base32 secret alone", d.SecretFile, maxSecretFile)
	}
	key, err := seqderive.DecodeSecret(string(data))
	if err != nil {
		return nil, fmt.Errorf("knock: %s: %w", d.SecretFile, err)
	}
	t := d.Time
	if t.IsZero() {
		t = time.Now()
	}
	seq := seqderive.Sequence(key, seqderive.Counter(t, d.Params.Step), d.Params)
	out := make([]string, len(seq))
	for i, k := range seq {
		out[i] = k.String()
	}
	return out, nil
}

// ParseLength parses --length: a number of knocks.
func ParseLength(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > seqderive.MaxLength {
		return 0, fmt.Errorf("knock: invalid length %q (want 1 to %d knocks)", s, seqderive.MaxLength)
	}
	return n, nil
}

// ParseStep parses --step: whole seconds, at least seqderive.MinStep.
func ParseStep(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || time.Duration(n)*time.Second < seqderive.MinStep {
		return 0, fmt.Errorf("knock: invalid step %q (want whole seconds, at least %d)", s, int(seqderive.MinStep/time.Second))
	}
	return time.Duration(n) * time.Second, nil
}

// ParseTime parses --time: a Unix time in seconds, or +N or -N seconds
// from now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 && !strings.HasPrefix(s, "-") {
		return time.Time{}, fmt.Errorf("knock: invalid time %q (want a Unix time in seconds, or +N or -N seconds from now)", s)
	}
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return now.Add(time.Duration(n) * time.Second), nil
	}
	return time.Unix(n, 0), nil
}

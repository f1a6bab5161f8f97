package knockd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/knock-go/knock/config"
)

// The used steps of time-derived doors are kept in the state directory,
// one file for each secret and step length, so that a step that opened a
// door never opens one again, after a restart or a crash too. The file
// is named steps-HEX, HEX being 16 hex digits of SHA-256 over
// stepsDomain, the step in seconds (8 bytes, big-endian) and the secret:
// doors that share a secret and a step share a record, and the name
// tells nothing of the secret. It holds stepsHeader, then the used step
// counters in decimal, one a line, in ascending order, the last
// maxRecordedSteps of them (every step up to the highest is spent).
const (
	stepsDomain      = "knockd used steps\x00"
	stepsHeader      = "# knockd used steps v1"
	maxRecordedSteps = 64
	maxStepsFile     = 64 << 10
)

// stepStore implements match.Steps on the state directory.
type stepStore struct {
	dir  string
	mu   sync.Mutex
	used map[string][]uint64 // by file name
}

// stepsName returns the name of d's record.
func stepsName(d *config.Door) string {
	h := sha256.New()
	h.Write([]byte(stepsDomain))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(d.Derive.Step/time.Second))
	h.Write(b[:])
	h.Write(d.Secret)
	return fmt.Sprintf("steps-%x", h.Sum(nil)[:8])
}

// newStepStore returns the record of the used steps in dir, and loads
// the records of the time-derived doors among doors.
func newStepStore(dir string, doors []*config.Door) (*stepStore, error) {
	s := &stepStore{dir: dir, used: map[string][]uint64{}}
	return s, s.load(doors)
}

// load reads the records of the time-derived doors among doors that are
// not loaded yet. A record that is missing is empty; one that cannot be
// trusted or read is an error, since the steps it holds could otherwise
// be replayed.
func (s *stepStore) load(doors []*config.Door) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range doors {
		if d.SecretFile == "" {
			continue
		}
		name := stepsName(d)
		if _, ok := s.used[name]; ok {
			continue
		}
		if s.dir == "" {
			return fmt.Errorf("door %s: no state directory to record its used steps in: %s", d.Name, stateAdviceSteps)
		}
		used, err := readSteps(filepath.Join(s.dir, name))
		if err != nil {
			return fmt.Errorf("door %s: %w", d.Name, err)
		}
		s.used[name] = used
	}
	return nil
}

const stateAdviceSteps = "set StateDir in [options], --state-dir, or StateDirectory= in the systemd unit"

// readSteps reads the record at path; a missing one is empty.
func readSteps(path string) ([]uint64, error) {
	f, err := openTrusted(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("used steps record %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStepsFile+1))
	if err != nil {
		return nil, fmt.Errorf("used steps record %s: %w", path, err)
	}
	bad := func(why string) ([]uint64, error) {
		return nil, fmt.Errorf("used steps record %s is damaged (%s): the steps it held could be replayed, so the door does not start; "+
			"if no sequence of this door was sent in the last minutes, remove the file", path, why)
	}
	if len(data) > maxStepsFile {
		return bad("too long")
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != stepsHeader {
		return bad("no header line")
	}
	var used []uint64
	for sc.Scan() {
		n, err := strconv.ParseUint(strings.TrimSpace(sc.Text()), 10, 64)
		if err != nil {
			return bad(fmt.Sprintf("%q is not a step", sc.Text()))
		}
		used = append(used, n)
	}
	return used, nil
}

// Used implements match.Steps.
func (s *stepStore) Used(d *config.Door) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.used[stepsName(d)])
}

// Use implements match.Steps: it writes the record anew, with c, to a
// temporary file that is synced, renamed over the record, and the
// directory synced, so that a crash leaves the old record or the new
// one.
func (s *stepStore) Use(d *config.Door, c uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return errors.New("no state directory to record the used step in")
	}
	name := stepsName(d)
	used := append(slices.Clone(s.used[name]), c)
	slices.Sort(used)
	used = slices.Compact(used)
	if len(used) > maxRecordedSteps {
		used = used[len(used)-maxRecordedSteps:]
	}
	var b bytes.Buffer
	b.WriteString(stepsHeader + "\n")
	for _, u := range used {
		fmt.Fprintf(&b, "%d\n", u)
	}
	path := filepath.Join(s.dir, name)
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := createExclusive(tmp)
	if err != nil {
		return fmt.Errorf("recording used step %d in %s: %w", c, path, err)
	}
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording used step %d in %s: %w", c, path, err)
	}
	s.used[name] = used
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

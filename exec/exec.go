// Package exec runs doors' start and stop commands without ever blocking
// the matcher, and keeps pending stop commands on disk so that no opening
// outlives its Cmd_Timeout, across shutdowns and crashes.
package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knock-go/knock/config"
)

// Defaults for Options.
const (
	DefaultMaxRunning = 16
	DefaultMaxQueued  = 1024
)

// Options configure a Runner. The zero value runs commands through
// /bin/sh with no durable state.
type Options struct {
	// Logf receives knockd's log lines ("door: running command: ...").
	// Nil discards them.
	Logf func(format string, args ...any)
	// Shell runs each command as Shell -c CMD; empty means /bin/sh.
	Shell string
	// MaxRunning caps the commands running at once; 0 means
	// DefaultMaxRunning.
	MaxRunning int
	// MaxQueued caps the start commands waiting for a slot; 0 means
	// DefaultMaxQueued. A start command beyond it is not run, and is
	// logged and counted. Stop commands always run.
	MaxQueued int
	// StateDir holds one file per pending stop command, and the lock
	// that keeps a second Runner (another daemon) from using it at the
	// same time. Empty means stop commands are kept in memory only.
	StateDir string
	// StateIfPresent makes StateDir optional: it is used only when it
	// already exists and is usable (so that stop commands an earlier run
	// left pending still run), and never created. It is for a
	// configuration without stop commands, which needs no state and must
	// start where no directory can be written.
	StateIfPresent bool
	// Stdout and Stderr receive the commands' output; nil discards it.
	Stdout, Stderr io.Writer
}

// Stats are the runner's counters.
type Stats struct {
	Running  int64  // commands running now
	Waiting  int64  // start commands waiting for a slot
	Pending  int64  // stop commands not yet run
	Started  uint64 // commands started
	Rejected uint64 // start commands not run because the queue was full
	Failed   uint64 // commands that could not start or exited non-zero
}

// Runner runs commands. Its methods are safe for concurrent use.
type Runner struct {
	opts Options
	sem  chan struct{}
	wg   sync.WaitGroup

	lock       *os.File // held on StateDir's lock file while the Runner lives
	memoryOnly sync.Once

	mu      sync.Mutex
	pending map[*pending]struct{}
	closed  bool

	seq                       atomic.Uint64
	running, waiting, pendN   atomic.Int64
	started, rejected, failed atomic.Uint64
}

// pending is a stop command waiting for its time.
type pending struct {
	rec       record
	path      string        // state file; empty without StateDir
	startDone chan struct{} // closed when the start command has ended
	timer     *time.Timer
	fired     bool
}

// record is what a state file holds, as one JSON line. After the line,
// the stop command itself appends a marker as it starts, so that a
// restarted daemon knows whether it already ran.
type record struct {
	Door  string    `json:"door"`
	Label string    `json:"label"` // the knocker as log lines name it
	Cmd   string    `json:"cmd"`
	Due   time.Time `json:"due"`
}

const startedMarker = "S"

// started reports whether a state file's stop command has started: the
// marker stands after the record's line.
func started(data []byte) bool {
	_, rest, ok := bytes.Cut(data, []byte("\n"))
	return ok && bytes.Contains(rest, []byte(startedMarker))
}

// New returns a Runner. With a StateDir it creates the directory, checks
// that it can write there and locks it, so that a daemon that could not
// keep its promises, or would share its state with another, stops at
// start-up.
func New(opts Options) (*Runner, error) {
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	if opts.MaxRunning <= 0 {
		opts.MaxRunning = DefaultMaxRunning
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = DefaultMaxQueued
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	r := &Runner{opts: opts, sem: make(chan struct{}, opts.MaxRunning), pending: map[*pending]struct{}{}}
	if opts.StateDir != "" && opts.StateIfPresent {
		if fi, err := os.Stat(opts.StateDir); err != nil || !fi.IsDir() {
			r.opts.StateDir = ""
		}
	}
	if r.opts.StateDir != "" {
		if err := r.openState(); err != nil {
			if !opts.StateIfPresent {
				return nil, err
			}
			opts.Logf("warning: not using state directory %s, which no stop command needs: %v", opts.StateDir, err)
			r.opts.StateDir = ""
		}
	}
	return r, nil
}

// openState creates StateDir, checks that it can write there and takes
// its lock.
func (r *Runner) openState() error {
	dir := r.opts.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("exec: creating state directory: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("exec: state directory %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	r.lock, err = lockState(dir)
	return err
}

// Stats returns the runner's counters.
func (r *Runner) Stats() Stats {
	return Stats{Running: r.running.Load(), Waiting: r.waiting.Load(), Pending: r.pendN.Load(),
		Started: r.started.Load(), Rejected: r.rejected.Load(), Failed: r.failed.Load()}
}

// Open runs door d's start command for the knocker src, and schedules its
// stop command Cmd_Timeout after now. label is how log lines name the
// knocker ("IP" or "IP (host)"). The stop command is on disk before the
// start command runs.
func (r *Runner) Open(d *config.Door, src netip.Addr, label string, now time.Time) {
	start, stop := d.Commands(src)
	if start == "" {
		return
	}
	var p *pending
	if stop != "" {
		if r.opts.StateDir == "" && r.opts.StateIfPresent {
			r.memoryOnly.Do(func() {
				r.opts.Logf("warning: no state directory (the configuration had no stop command at start): " +
					"stop commands are kept in memory only, and a crash would leave their openings; restart to keep them on disk")
			})
		}
		p = &pending{rec: record{Door: d.Name, Label: label, Cmd: stop, Due: now.Add(d.CmdTimeout)},
			startDone: make(chan struct{})}
		if err := r.record(p); err != nil {
			r.opts.Logf("%s: cannot record the stop command, so the start command does not run: %v", d.Name, err)
			r.failed.Add(1)
			return
		}
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if p != nil {
			close(p.startDone)
			r.removeRecord(p)
		}
		return
	}
	if r.waiting.Load() >= int64(r.opts.MaxQueued) {
		r.mu.Unlock()
		r.rejected.Add(1)
		r.opts.Logf("%s: %d commands already waiting, not running: %s", d.Name, r.opts.MaxQueued, start)
		if p != nil {
			close(p.startDone)
			r.removeRecord(p)
		}
		return
	}
	r.waiting.Add(1)
	if p != nil {
		r.schedule(p)
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		r.sem <- struct{}{}
		r.waiting.Add(-1)
		r.run(d.Name, start, nil)
		<-r.sem
		if p != nil {
			close(p.startDone)
		}
	}()
}

// schedule arms p's timer. r.mu must be held.
func (r *Runner) schedule(p *pending) {
	r.pending[p] = struct{}{}
	r.pendN.Add(1)
	p.timer = time.AfterFunc(time.Until(p.rec.Due), func() { r.fire(p, true) })
}

// fire runs p's stop command once: when its time comes, or at Close.
func (r *Runner) fire(p *pending, timedOut bool) {
	r.mu.Lock()
	if p.fired {
		r.mu.Unlock()
		return
	}
	p.fired = true
	delete(r.pending, p)
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer r.pendN.Add(-1)
		// The stop command undoes the start command: never overtake it.
		<-p.startDone
		if timedOut {
			r.opts.Logf("%s: %s: command timeout", p.rec.Label, p.rec.Door)
		}
		r.sem <- struct{}{}
		r.runStop(p)
		<-r.sem
	}()
}

// runStop runs the stop command so that it runs once even if this process
// dies at any moment: the state file stays locked by the command while it
// runs, and the command marks the file before doing anything else. A
// restarted daemon waits for the lock and then sees the mark.
func (r *Runner) runStop(p *pending) {
	if p.path == "" {
		r.run(p.rec.Door, p.rec.Cmd, nil)
		return
	}
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		// Removed once its stop command ran: by another process
		// sharing the state directory.
		return
	}
	if err != nil {
		r.opts.Logf("%s: cannot open the record of the stop command (%v); running it anyway", p.rec.Door, err)
		r.run(p.rec.Door, p.rec.Cmd, nil)
		return
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		r.opts.Logf("%s: cannot lock the record of the stop command (%v); running it anyway", p.rec.Door, err)
	} else if data, err := os.ReadFile(p.path); err == nil && started(data) {
		// Another process sharing the state directory ran it.
		r.removeRecord(p)
		return
	}
	r.run(p.rec.Door, p.rec.Cmd, f)
	r.removeRecord(p)
}

// run runs cmd through the shell and waits for it. With a state file,
// the shell first writes the started marker on it (as descriptor 3).
func (r *Runner) run(door, cmdline string, state *os.File) {
	r.opts.Logf("%s: running command: %s", door, cmdline)
	script := cmdline
	var extra []*os.File
	if state != nil {
		script = "printf " + startedMarker + " >&3; exec 3>&-\n" + cmdline
		extra = []*os.File{state}
	}
	c := osexec.Command(r.opts.Shell, "-c", script)
	c.Stdout, c.Stderr = r.opts.Stdout, r.opts.Stderr
	c.ExtraFiles = extra
	// Its own session, as knockd does: a Ctrl-C meant for the daemon
	// must not kill a firewall command half way.
	c.SysProcAttr = sysProcAttr()
	r.running.Add(1)
	r.started.Add(1)
	err := c.Run()
	r.running.Add(-1)
	var exit *osexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.failed.Add(1)
		r.opts.Logf("%s: command returned non-zero status code (%d)", door, exitCode(exit))
	default:
		r.failed.Add(1)
		r.opts.Logf("%s: error: command could not start: %v", door, err)
	}
}

// Close runs every pending stop command now, without waiting for its
// time, and waits for all commands to end or ctx to be done. Commands
// asked for after Close are not run.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	var ps []*pending
	for p := range r.pending {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	for _, p := range ps {
		// A recovered record still being read (no timer yet) is fired
		// by recoverOne, which sees closed.
		// fire runs a stop command once, so call it whatever Stop says:
		// a timer that just fired may not have reached fire yet, and
		// Wait below must not start before fire has counted itself.
		if p.timer != nil {
			r.fire(p, !p.timer.Stop())
		}
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		r.unlock()
		return nil
	case <-ctx.Done():
		// The lock stays while commands still run on the state.
		return fmt.Errorf("exec: commands still running at shutdown: %w", ctx.Err())
	}
}

// unlock releases the state directory for the next instance.
func (r *Runner) unlock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lock != nil {
		r.lock.Close()
		r.lock = nil
	}
}

// record writes p's state file and makes it durable.
func (r *Runner) record(p *pending) error {
	if r.opts.StateDir == "" {
		return nil
	}
	line, err := json.Marshal(p.rec)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%d-%d-%d.stop", time.Now().UnixNano(), os.Getpid(), r.seq.Add(1))
	p.path = filepath.Join(r.opts.StateDir, name)
	tmp := p.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p.path)
	}
	if err == nil {
		err = syncDir(r.opts.StateDir)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (r *Runner) removeRecord(p *pending) {
	if p.path == "" {
		return
	}
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.opts.Logf("%s: cannot remove %s: %v", p.rec.Door, p.path, err)
	}
	syncDir(r.opts.StateDir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Recover picks up the stop commands that an earlier run left pending:
// overdue ones run at once (logged as a command timeout), the others at
// their time. A stop command that was already running when that run
// died is waited for, and not run again. Recover returns how many stop
// commands it scheduled.
func (r *Runner) Recover() (int, error) {
	if r.opts.StateDir == "" {
		return 0, nil
	}
	ents, err := os.ReadDir(r.opts.StateDir)
	if err != nil {
		return 0, fmt.Errorf("exec: reading state directory: %w", err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(r.opts.StateDir, name)
		if strings.HasSuffix(name, ".stop.tmp") {
			// Never renamed: its start command never ran.
			os.Remove(path)
			continue
		}
		if !strings.HasSuffix(name, ".stop") {
			continue
		}
		p := &pending{path: path, startDone: make(chan struct{})}
		close(p.startDone)
		n++
		r.mu.Lock()
		r.pending[p] = struct{}{}
		r.pendN.Add(1)
		r.wg.Add(1)
		r.mu.Unlock()
		go r.recoverOne(p)
	}
	return n, nil
}

func (r *Runner) recoverOne(p *pending) {
	defer r.wg.Done()
	unpend := func() {
		r.mu.Lock()
		delete(r.pending, p)
		p.fired = true
		r.mu.Unlock()
		r.pendN.Add(-1)
	}
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		unpend()
		if !errors.Is(err, os.ErrNotExist) {
			r.opts.Logf("cannot read pending stop command %s: %v", p.path, err)
		}
		// A record already removed is one whose stop command ran.
		return
	}
	// A stop command still running from the run that died holds the lock.
	lockErr := lockFile(f)
	data, err := io.ReadAll(f)
	unlockFile(f)
	f.Close()
	line, _, _ := bytes.Cut(data, []byte("\n"))
	if err == nil {
		err = json.Unmarshal(line, &p.rec)
	}
	if err != nil || lockErr != nil {
		unpend()
		r.opts.Logf("cannot read pending stop command %s: %v", p.path, errors.Join(err, lockErr))
		return
	}
	if started(data) {
		unpend()
		r.removeRecord(p)
		return
	}
	r.mu.Lock()
	if r.closed || p.fired {
		r.mu.Unlock()
		r.fire(p, false)
		return
	}
	delete(r.pending, p)
	r.pendN.Add(-1)
	r.schedule(p)
	r.mu.Unlock()
}

func exitCode(e *osexec.ExitError) int {
	if c := e.ExitCode(); c >= 0 {
		return c
	}
	// Killed by a signal: report it as shells do.
	if s, ok := signalOf(e); ok {
		return 128 + s
	}
	return -1
}

// Package exec runs doors' start and stop commands without ever blocking
// the matcher, and keeps pending stop commands on disk so that no opening
// outlives its Cmd_Timeout, across shutdowns and crashes.
//
// Its API serves this module's commands and is not yet stable.
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
	"slices"
	"strconv"
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

// closeGrace is how long a command may still run once Close has been
// called, whatever CommandLimit says: a shutdown must not wait a minute
// for hung commands.
const closeGrace = 5 * time.Second

// Options configure a Runner. The zero value runs commands through
// /bin/sh with no durable state.
type Options struct {
	// Logf receives knockd's log lines ("door: running command: ...").
	// Nil discards them.
	Logf func(format string, args ...any)
	// Shell runs each command as Shell -c CMD; empty means /bin/sh.
	Shell string
	// MaxRunning caps the start commands running at once, and
	// separately the stop commands, so that start commands can never
	// keep a stop command from running; 0 means DefaultMaxRunning.
	// Beyond it, a door with none of its start (or stop) commands
	// running may still run one, so that one door's storm or hung
	// commands never hold up another door.
	MaxRunning int
	// MaxQueued caps the start commands of one door waiting for a slot;
	// 0 means DefaultMaxQueued. A start command beyond it is not run,
	// and is counted and logged once a second per door. Stop commands
	// always run.
	MaxQueued int
	// CommandLimit is how long a command may run before its process
	// group is killed; 0 means config.DefaultCommandLimit.
	CommandLimit time.Duration
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
	Rejected uint64 // start commands not run because their door's queue was full
	Dropped  uint64 // start commands not run because the runner closed first
	Killed   uint64 // commands killed for running past CommandLimit
	Failed   uint64 // commands that could not start or exited non-zero
}

// Runner runs commands. Its methods are safe for concurrent use.
//
// Start commands wait in one queue per door, and the doors with waiting
// work take turns; a door with nothing running never waits for a slot,
// so that a storm of openings on one door does not delay the others'
// commands. Stop commands have slots of their own.
type Runner struct {
	opts Options
	wg   sync.WaitGroup

	lock       *os.File // held on StateDir's lock file while the Runner lives
	memoryOnly sync.Once

	mu          sync.Mutex
	maxRunning  int
	limit       time.Duration // CommandLimit
	queues      map[string]*doorQueue
	turns       []*doorQueue // doors with start commands waiting, in turn
	startsBusy  int
	stops       []*pending // stop commands due, waiting for a slot
	stopsBusy   int
	stopDoors   map[string]int // stop commands running, by door
	pending     map[*pending]struct{}
	closed      bool
	closedAt    time.Time
	closing     chan struct{} // closed by Close
	summaryDue  *time.Timer   // logs refusals; set while some are counted
	summaryDoor []string      // doors with refusals counted, in order

	seq                       atomic.Uint64
	running, waiting, pendN   atomic.Int64
	started, rejected, failed atomic.Uint64
	dropped, killed           atomic.Uint64
}

// doorQueue is one door's start commands waiting for a slot.
type doorQueue struct {
	name    string
	jobs    []*job
	turn    bool // in Runner.turns
	running int  // its start commands running
	refused int  // since the last summary
}

// job is an opening whose start command has not run yet. It costs no
// disk write until it gets its slot.
type job struct {
	door        string
	start, stop string
	src         netip.Addr
	label       string
	since, due  time.Time
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
// the daemon appends the start command's process group ("P<pgid>\n")
// once it runs, and the stop command itself appends a marker as it
// starts, so that a restarted daemon knows whether it already ran.
//
// The record says what kind of opening it closes and that kind's data:
// kind "command" (the stop command, in cmd, where records written before
// kinds existed have it too, so that they read as commands, and that an
// earlier version reading a newer record still runs its command); kinds
// "nft" and "ipset" (the set, and the knocker's address, in set and
// addr), whose kernel removes the element by itself at due, so that a
// restarted daemon has nothing to run for them. The kernel sets write no
// records today, since the element in the kernel is its own durable
// record; a record of a kind this version does not know is left alone.
type record struct {
	Door  string     `json:"door"`
	Src   netip.Addr `json:"src,omitzero"`   // the knocker; zero in the records of earlier versions
	Label string     `json:"label"`          // the knocker as log lines name it
	Kind  string     `json:"kind"`           // KindCommand, KindNFT or KindIPSet; "" in older records means KindCommand
	Cmd   string     `json:"cmd,omitempty"`  // valid iff Kind is KindCommand
	Set   string     `json:"set,omitempty"`  // valid iff Kind is KindNFT ("inet knockd ssh4") or KindIPSet
	Addr  string     `json:"addr,omitempty"` // valid iff Kind is KindNFT or KindIPSet
	Since time.Time  `json:"since,omitzero"` // the OPEN SESAME; zero in earlier records
	Due   time.Time  `json:"due"`
}

// src returns the knocker: Src, or for a record of an earlier version the
// address that begins its label.
func (rec *record) src() netip.Addr {
	if rec.Src.IsValid() {
		return rec.Src
	}
	first, _, _ := strings.Cut(rec.Label, " ")
	a, _ := netip.ParseAddr(first)
	return a
}

// The kinds of opening a record closes.
const (
	KindCommand = "command"
	KindNFT     = "nft"
	KindIPSet   = "ipset"
)

// kind returns r's kind, reading a record without one as a command.
func (r record) kind() string {
	if r.Kind == "" {
		return KindCommand
	}
	return r.Kind
}

const startedMarker = "S"

// started reports whether a state file's stop command has started: the
// marker stands after the record's line.
func started(data []byte) bool {
	_, rest, ok := bytes.Cut(data, []byte("\n"))
	return ok && bytes.Contains(rest, []byte(startedMarker))
}

// startGroup returns the process group of a record's start command, or 0.
func startGroup(data []byte) int {
	_, rest, _ := bytes.Cut(data, []byte("\n"))
	for _, l := range bytes.Split(rest, []byte("\n")) {
		if n, ok := bytes.CutPrefix(l, []byte("P")); ok {
			if pgid, err := strconv.Atoi(string(n)); err == nil {
				return pgid
			}
		}
	}
	return 0
}

// New returns a Runner. With a StateDir it creates the directory, checks
// that no one else can write there, and locks it, so that a daemon that
// could not keep its promises, or would share its state with another,
// stops at start-up.
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
	if opts.CommandLimit <= 0 {
		opts.CommandLimit = config.DefaultCommandLimit
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
	r := &Runner{opts: opts, maxRunning: opts.MaxRunning, limit: opts.CommandLimit, queues: map[string]*doorQueue{}, stopDoors: map[string]int{},
		pending: map[*pending]struct{}{}, closing: make(chan struct{})}
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

// stateAdvice says how to give the daemon a state directory.
const stateAdvice = "set StateDir in [options], --state-dir, or StateDirectory= in the systemd unit, to a directory this user owns and can write"

// openState creates StateDir, checks that it is this user's alone and
// writable, and takes its lock.
func (r *Runner) openState() error {
	dir := r.opts.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("exec: creating state directory: %w (%s)", err, stateAdvice)
	}
	if err := checkStateDir(dir); err != nil {
		return err
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("exec: state directory %s is not writable: %w (%s)", dir, err, stateAdvice)
	}
	probe.Close()
	os.Remove(probe.Name())
	r.lock, err = lockState(dir)
	return err
}

// StateDir returns the state directory the runner checked, locked and
// uses; empty when it uses none.
func (r *Runner) StateDir() string { return r.opts.StateDir }

// Stats returns the runner's counters.
func (r *Runner) Stats() Stats {
	return Stats{Running: r.running.Load(), Waiting: r.waiting.Load(), Pending: r.pendN.Load(),
		Started: r.started.Load(), Rejected: r.rejected.Load(), Dropped: r.dropped.Load(),
		Killed: r.killed.Load(), Failed: r.failed.Load()}
}

// SetLimits changes MaxRunning and CommandLimit, as a reload of
// MaxCommands and CommandLimit does; 0 means the default. Commands
// already running keep the limit they started with.
func (r *Runner) SetLimits(maxRunning int, commandLimit time.Duration) {
	if maxRunning <= 0 {
		maxRunning = DefaultMaxRunning
	}
	if commandLimit <= 0 {
		commandLimit = config.DefaultCommandLimit
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxRunning, r.limit = maxRunning, commandLimit
	r.dispatch()
}

// commandLimit returns the CommandLimit now.
func (r *Runner) commandLimit() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.limit
}

// Open queues door d's start command for the knocker src, with its stop
// command due Cmd_Timeout after now. label is how log lines name the
// knocker ("IP" or "IP (host)"). Open never waits for the disk: the stop
// command is recorded when the start command gets its slot, before it
// runs.
func (r *Runner) Open(d *config.Door, src netip.Addr, label string, now time.Time) {
	start, stop := d.Commands(src)
	if start == "" {
		return
	}
	j := &job{door: d.Name, start: start, src: src, label: label, since: now}
	if stop != "" {
		j.stop, j.due = stop, now.Add(d.CmdTimeout)
		if r.opts.StateDir == "" && r.opts.StateIfPresent {
			r.memoryOnly.Do(func() {
				r.opts.Logf("warning: no state directory (the configuration had no stop command at start): " +
					"stop commands are kept in memory only, and a crash would leave their openings; restart to keep them on disk")
			})
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.dropped.Add(1)
		return
	}
	q := r.queues[d.Name]
	if q == nil {
		q = &doorQueue{name: d.Name}
		r.queues[d.Name] = q
	}
	if len(q.jobs) >= r.opts.MaxQueued {
		r.rejected.Add(1)
		if q.refused == 0 {
			r.summaryDoor = append(r.summaryDoor, q.name)
		}
		q.refused++
		if r.summaryDue == nil {
			r.summaryDue = time.AfterFunc(time.Second, r.summarise)
		}
		return
	}
	q.jobs = append(q.jobs, j)
	r.waiting.Add(1)
	if !q.turn {
		q.turn = true
		r.turns = append(r.turns, q)
	}
	r.dispatch()
}

// summarise logs, per door, the start commands refused since the last
// summary.
func (r *Runner) summarise() {
	r.mu.Lock()
	var lines []string
	for _, name := range r.summaryDoor {
		if q := r.queues[name]; q != nil && q.refused > 0 {
			lines = append(lines, fmt.Sprintf("%s: %d start commands refused in the last second: queue full", name, q.refused))
			q.refused = 0
		}
	}
	r.summaryDoor, r.summaryDue = nil, nil
	// Queues of doors with nothing waiting are not kept: doors come and
	// go with reloads.
	for name, q := range r.queues {
		if len(q.jobs) == 0 && !q.turn && q.running == 0 {
			delete(r.queues, name)
		}
	}
	r.mu.Unlock()
	for _, l := range lines {
		r.opts.Logf("%s", l)
	}
}

// dispatch starts what the free slots allow: start commands door by door
// in turn, stop commands in the order they came due. Beyond the slots, a
// door with no command of the kind running may always start one, so that
// a storm on one door, or hung commands, never make another door wait:
// at most MaxRunning plus one per door run at once. r.mu must be held.
func (r *Runner) dispatch() {
	for {
		i := 0
		for i < len(r.turns) && r.startsBusy >= r.maxRunning && r.turns[i].running > 0 {
			i++
		}
		if i == len(r.turns) {
			break
		}
		q := r.turns[i]
		r.turns = append(r.turns[:i], r.turns[i+1:]...)
		j := q.jobs[0]
		q.jobs[0] = nil
		q.jobs = q.jobs[1:]
		if len(q.jobs) > 0 {
			r.turns = append(r.turns, q)
		} else {
			q.turn, q.jobs = false, nil
		}
		r.waiting.Add(-1)
		r.startsBusy++
		q.running++
		r.wg.Add(1)
		go r.runStart(q, j)
	}
	for {
		i := 0
		for i < len(r.stops) && r.stopsBusy >= r.maxRunning && r.stopDoors[r.stops[i].rec.Door] > 0 {
			i++
		}
		if i == len(r.stops) {
			break
		}
		p := r.stops[i]
		r.stops = append(r.stops[:i], r.stops[i+1:]...)
		r.stopsBusy++
		r.stopDoors[p.rec.Door]++
		r.wg.Add(1)
		go r.runStop(p)
	}
}

// runStart records j's stop command, then runs its start command holding
// the record's lock, so that a daemon restarted after a crash runs the
// stop command only once the start command has ended.
func (r *Runner) runStart(q *doorQueue, j *job) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		r.startsBusy--
		q.running--
		r.dispatch()
		r.mu.Unlock()
	}()
	if j.stop == "" {
		r.run(j.door, j.start, nil, false)
		return
	}
	p := &pending{rec: record{Door: j.door, Src: j.src, Label: j.label, Kind: KindCommand, Cmd: j.stop, Since: j.since, Due: j.due}, startDone: make(chan struct{})}
	defer close(p.startDone)
	var f *os.File
	err := r.record(p)
	if err == nil && p.path != "" {
		if f, err = openRecord(p.path); err == nil {
			if ok, lerr := tryLock(f); !ok {
				f.Close()
				err = errors.Join(errors.New("locked by another process"), lerr)
			}
		}
		if err != nil {
			r.removeRecord(p)
		}
	}
	if err != nil {
		r.opts.Logf("%s: cannot record the stop command, so the start command does not run: %v", j.door, err)
		r.failed.Add(1)
		return
	}
	r.mu.Lock()
	closed := r.closed
	r.schedule(p)
	r.mu.Unlock()
	if closed {
		r.fire(p, false)
	}
	r.run(j.door, j.start, f, false)
}

// schedule arms p's timer. r.mu must be held.
func (r *Runner) schedule(p *pending) {
	r.pending[p] = struct{}{}
	r.pendN.Add(1)
	p.timer = time.AfterFunc(time.Until(p.rec.Due), func() { r.fire(p, true) })
}

// fire queues p's stop command once: when its time comes, or at Close.
func (r *Runner) fire(p *pending, timedOut bool) {
	why := ""
	if timedOut {
		why = "command timeout"
	}
	r.fireFor(p, why)
}

// fireFor is fire with the reason logged before the stop command runs
// ("command timeout", "revoked"), or none. It reports whether it queued
// the stop command: false when p had fired already.
func (r *Runner) fireFor(p *pending, why string) bool {
	r.mu.Lock()
	if p.fired {
		r.mu.Unlock()
		return false
	}
	r.fireLocked(p, why)
	r.mu.Unlock()
	return true
}

// fireLocked is fireFor for a p not fired yet, with r.mu held.
func (r *Runner) fireLocked(p *pending, why string) {
	p.fired = true
	delete(r.pending, p)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		// The stop command undoes the start command: never overtake it.
		<-p.startDone
		if why != "" {
			r.opts.Logf("%s", closingLine(p.rec.Label, p.rec.Door, why))
		}
		r.mu.Lock()
		r.stops = append(r.stops, p)
		r.dispatch()
		r.mu.Unlock()
	}()
}

// deadline returns when a wait begun at since must give up: after
// CommandLimit, or closeGrace after Close.
func (r *Runner) deadline(since time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := since.Add(r.limit)
	if r.closed {
		if c := r.closedAt.Add(closeGrace); c.Before(d) {
			d = c
		}
	}
	return d
}

// runStop runs the stop command so that it runs once even if this process
// dies at any moment: the state file stays locked by the command while it
// starts, and the command marks the file before doing anything else. A
// restarted daemon waits for the lock and then sees the mark.
func (r *Runner) runStop(p *pending) {
	defer r.wg.Done()
	defer func() {
		r.pendN.Add(-1)
		r.mu.Lock()
		r.stopsBusy--
		if r.stopDoors[p.rec.Door]--; r.stopDoors[p.rec.Door] == 0 {
			delete(r.stopDoors, p.rec.Door)
		}
		r.dispatch()
		r.mu.Unlock()
	}()
	if p.path == "" {
		r.run(p.rec.Door, p.rec.Cmd, nil, true)
		return
	}
	f, err := openRecord(p.path)
	if errors.Is(err, os.ErrNotExist) {
		// A record gone is one whose stop command ran.
		return
	}
	if err != nil {
		// What runs is the command kept in memory, never the file's.
		r.opts.Logf("%s: cannot use the record of the stop command (%v); running it anyway", p.rec.Door, err)
		r.run(p.rec.Door, p.rec.Cmd, nil, true)
		return
	}
	defer f.Close()
	since := time.Now()
	if ok, err := waitLock(f, func() time.Time { return r.deadline(since) }); !ok {
		r.opts.Logf("%s: cannot lock the record of the stop command (%v); running it anyway", p.rec.Door, errors.Join(errors.New("held by another process"), err))
	} else if data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20)); err == nil && started(data) {
		r.removeRecord(p)
		return
	}
	r.run(p.rec.Door, p.rec.Cmd, f, true)
	r.removeRecord(p)
}

// run runs cmd through the shell and waits for it, or kills its process
// group when it runs past CommandLimit (or closeGrace after Close). With
// a state file, a stop command's shell first writes the started marker
// on it (as descriptor 3); a start command's outer shell keeps it open,
// and so the record locked, until the command has ended, while the
// command itself and what it leaves running do not inherit it. run
// closes the state file of a start command.
func (r *Runner) run(door, cmdline string, state *os.File, stop bool) {
	r.opts.Logf("%s", RunningLine(door, cmdline))
	args := []string{"-c", cmdline}
	var extra []*os.File
	switch {
	case state != nil && stop:
		args = []string{"-c", "printf " + startedMarker + " >&3; exec 3>&-\n" + cmdline}
		extra = []*os.File{state}
	case state != nil:
		defer state.Close()
		// Not the script's last command, so that no shell replaces
		// itself with it (and drops the lock with descriptor 3).
		args = []string{"-c", `"$1" -c "$2" 3>&-; exit $?`, "knockd", r.opts.Shell, cmdline}
		extra = []*os.File{state}
	}
	c := osexec.Command(r.opts.Shell, args...)
	c.Stdout, c.Stderr = r.opts.Stdout, r.opts.Stderr
	c.ExtraFiles = extra
	// Its own session, as knockd does: a Ctrl-C meant for the daemon
	// must not kill a firewall command half way. Its process group is
	// what CommandLimit kills.
	c.SysProcAttr = sysProcAttr()
	// Output copied through a pipe must not keep Wait waiting on what
	// the command left running.
	c.WaitDelay = time.Second
	began := time.Now()
	if err := c.Start(); err != nil {
		r.failed.Add(1)
		r.opts.Logf("%s: error: command could not start: %v", door, err)
		return
	}
	r.running.Add(1)
	r.started.Add(1)
	if state != nil && !stop {
		// Best effort, for a restarted daemon that must end a start
		// command that outlived its limit.
		fmt.Fprintf(state, "P%d\n", c.Process.Pid)
		state.Close()
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	limitFor := r.commandLimit()
	limit := time.NewTimer(limitFor)
	defer limit.Stop()
	closing := r.closing
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case <-closing:
			closing = nil
			if left := time.Until(began.Add(limitFor)); left > closeGrace {
				limit.Reset(closeGrace)
			}
		case <-limit.C:
			r.killed.Add(1)
			ran := time.Since(began).Round(time.Second)
			if stop {
				r.opts.Logf("%s: stop command still running after %v, killed; what it was to close may still be open: %s", door, ran, cmdline)
			} else {
				r.opts.Logf("%s: start command still running after %v, killed: %s", door, ran, cmdline)
			}
			killGroup(c.Process.Pid)
		}
	}
	r.running.Add(-1)
	var exit *osexec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.failed.Add(1)
		r.opts.Logf("%s: command returned non-zero status code (%d)", door, exitCode(exit))
	default:
		r.failed.Add(1)
		r.opts.Logf("%s: error: command could not be waited for: %v", door, err)
	}
}

// Close drops the start commands that have not started (counted in the
// log), runs every pending stop command now, without waiting for its
// time, and waits for all commands to end or ctx to be done. A command
// still running closeGrace after Close is killed. Commands asked for
// after Close are not run.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed, r.closedAt = true, time.Now()
		close(r.closing)
	}
	n := 0
	for _, q := range r.turns {
		n += len(q.jobs)
		q.jobs, q.turn = nil, false
	}
	r.turns = nil
	r.waiting.Add(-int64(n))
	r.dropped.Add(uint64(n))
	var ps []*pending
	for p := range r.pending {
		ps = append(ps, p)
	}
	if r.summaryDue != nil {
		r.summaryDue.Stop()
	}
	r.mu.Unlock()
	r.summarise()
	if n > 0 {
		r.opts.Logf("%d start commands not run: shutting down", n)
	}
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
		// Unlocked before it is closed: a child forked meanwhile holds a
		// copy of the descriptor until it execs, and closing ours alone
		// would leave the lock held for that moment.
		unlockFile(r.lock)
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
// their time. A start or stop command still running from that run is
// waited for (up to CommandLimit, then its process group is killed), and
// a stop command that had started is not run again. A record that is not
// a regular file of this daemon's user is ignored, with a log line.
// Recover returns how many stop commands it scheduled.
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
	f, err := openRecord(p.path)
	if err != nil {
		unpend()
		switch {
		case errors.Is(err, os.ErrNotExist):
			// A record already removed is one whose stop command ran.
		case errors.Is(err, errUntrusted):
			r.opts.Logf("ignoring a pending stop command: %v", err)
		default:
			r.opts.Logf("cannot read pending stop command %s: %v", p.path, err)
		}
		return
	}
	// A start command still running from the run that died holds the
	// lock until it ends, and so does a stop command until it has marked
	// the record.
	since := time.Now()
	ok, lockErr := waitLock(f, func() time.Time { return r.deadline(since) })
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if !ok && lockErr == nil && err == nil {
		pgid := startGroup(data)
		r.opts.Logf("%s: a command of an earlier run on its record is still running after %v: killing its process group %d",
			p.path, time.Since(since).Round(time.Second), pgid)
		killGroup(pgid)
		end := time.Now().Add(2 * time.Second)
		ok, lockErr = waitLock(f, func() time.Time { return end })
		data, err = io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
		if !ok && lockErr == nil {
			r.opts.Logf("%s: still locked; running its stop command anyway", p.path)
		}
	}
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
	switch p.rec.kind() {
	case KindCommand:
	case KindNFT, KindIPSet:
		// The kernel removes the element at its time, running or not.
		unpend()
		r.removeRecord(p)
		return
	default:
		unpend()
		r.opts.Logf("ignoring pending record %s: it closes an opening of kind %q, which this version does not know; left in place", p.path, p.rec.Kind)
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

// RunningLine is knockd's line for a command it starts: "door: running
// command: CMD".
func RunningLine(door, cmdline string) string {
	return fmt.Sprintf("%s: running command: %s", door, cmdline)
}

// TimeoutLine is knockd's line when an opening's Cmd_Timeout has passed
// and its stop command is due: "IP: door: command timeout", with the
// knocker named by label.
func TimeoutLine(label, door string) string {
	return closingLine(label, door, "command timeout")
}

// closingLine is the line logged as an opening closes before its time
// is up or as it is: "IP: door: WHY" ("command timeout", "revoked").
func closingLine(label, door, why string) string {
	return fmt.Sprintf("%s: %s: %s", label, door, why)
}

// An Opening is a knocker's door held open by its start command, until
// its stop command runs.
type Opening struct {
	Door  string     // the door's section
	Src   netip.Addr // the knocker; invalid for a record of an earlier version naming none
	Label string     // the knocker as log lines name it
	// Since is the OPEN SESAME; zero for a record of an earlier version.
	Since time.Time
	// Until is when the stop command is due.
	Until time.Time
	// Stop is the stop command.
	Stop string
	// Waiting is true while the start command waits for a slot.
	Waiting bool
}

// Pending lists the openings whose stop command has not been queued yet:
// those whose start command waits for a slot or has run, oldest first.
// Records recovered from an earlier run are listed once they have been
// read.
func (r *Runner) Pending() []Opening {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Opening
	for _, q := range r.queues {
		for _, j := range q.jobs {
			if j.stop != "" {
				out = append(out, Opening{Door: j.door, Src: j.src, Label: j.label, Since: j.since, Until: j.due, Stop: j.stop, Waiting: true})
			}
		}
	}
	for p := range r.pending {
		if p.timer == nil || p.fired {
			continue
		}
		out = append(out, Opening{Door: p.rec.Door, Src: p.rec.src(), Label: p.rec.Label, Since: p.rec.Since, Until: p.rec.Due, Stop: p.rec.Cmd})
	}
	slices.SortFunc(out, func(a, b Opening) int {
		if c := a.Until.Compare(b.Until); c != 0 {
			return c
		}
		return strings.Compare(a.Door, b.Door)
	})
	return out
}

// Revoke closes src's openings now, on door only unless door is empty:
// each stop command is run at once (once: its timer no longer fires, and
// its record is removed as it runs), after the line "LABEL: door:
// revoked"; a start command still waiting for its slot is dropped
// instead, with the same line. Revoke returns the openings it closed.
func (r *Runner) Revoke(src netip.Addr, door string) []Opening {
	src = src.Unmap()
	r.mu.Lock()
	var out []Opening
	var dropped []*job
	for _, q := range r.queues {
		if door != "" && q.name != door {
			continue
		}
		kept := q.jobs[:0]
		for _, j := range q.jobs {
			if j.src.Unmap() == src {
				dropped = append(dropped, j)
				out = append(out, Opening{Door: j.door, Src: j.src, Label: j.label, Since: j.since, Until: j.due, Stop: j.stop, Waiting: true})
				continue
			}
			kept = append(kept, j)
		}
		clear(q.jobs[len(kept):])
		q.jobs = kept
	}
	if len(dropped) > 0 {
		r.waiting.Add(-int64(len(dropped)))
		r.turns = slices.DeleteFunc(r.turns, func(q *doorQueue) bool {
			if len(q.jobs) == 0 {
				q.turn = false
				return true
			}
			return false
		})
	}
	for p := range r.pending {
		if p.timer == nil || p.fired || p.rec.src().Unmap() != src || (door != "" && p.rec.Door != door) {
			continue
		}
		p.timer.Stop()
		out = append(out, Opening{Door: p.rec.Door, Src: p.rec.src(), Label: p.rec.Label, Since: p.rec.Since, Until: p.rec.Due, Stop: p.rec.Cmd})
		r.fireLocked(p, "revoked")
	}
	r.mu.Unlock()
	for _, j := range dropped {
		r.opts.Logf("%s", closingLine(j.label, j.door, "revoked"))
	}
	return out
}

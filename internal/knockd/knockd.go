// Package knockd is the daemon: it wires the configuration, a capture
// backend, the matcher and the command runner, and handles reloads and
// shutdown. cmd/knockd only parses flags and signals.
package knockd

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/exec"
	"github.com/knock-go/knock/internal/control"
	"github.com/knock-go/knock/internal/klog"
	"github.com/knock-go/knock/internal/sdnotify"
	"github.com/knock-go/knock/kset"
	"github.com/knock-go/knock/match"
)

// Options are the daemon's settings from the command line. Fields left
// empty take their value from the configuration file.
type Options struct {
	ConfigPath string // -c
	Interface  string // -i; wins over Interface in [options]
	PidFile    string // -p
	LogFile    string // -g
	Backend    string // auto, raw or listener; empty means auto
	StateDir   string // --state-dir; wins over StateDir in [options]
	Daemon     bool   // -d: write the pid file
	Debug      bool   // -D
	Lookup     bool   // -l
	Verbose    bool   // -v
	IPv4Only   bool   // -4
	Check      bool   // -t, --check: parse, print the doors, bind nothing
	// LogFormat is --log-format: "text" or "json"; empty means LogFormat
	// in [options], else text.
	LogFormat string
	// Replay is --replay: the capture file to replay instead of
	// capturing; see replay.
	Replay  string
	Control string // --control: the control socket; wins over ControlSocket
	Metrics string // --metrics: HOST:PORT for /metrics; wins over MetricsAddress

	// NotifySocket is systemd's notification socket; empty means
	// $NOTIFY_SOCKET.
	NotifySocket string

	// SyslogPath is the system logger's socket, for tests; empty means
	// /dev/log.
	SyslogPath string

	// Stdout and Stderr default to the process's.
	Stdout, Stderr io.Writer
	// Reload delivers one value per SIGHUP.
	Reload <-chan struct{}
	// Ready, when not nil, is called once start-up has succeeded (every
	// socket open), or failed, with the error.
	Ready func(error)

	// NewSource, when set, opens the capture source instead of Backend:
	// a fake one in tests, or a backend of one's own. The daemon closes
	// the source when it stops.
	NewSource SourceFunc

	// lookupAddr replaces the resolver of -l in tests; nil means
	// net.DefaultResolver.
	lookupAddr lookupFunc
	// kernel replaces the kernel in the checks of the doors' sets in
	// tests; nil means netlink.
	kernel kset.Kernel
}

// Run runs the daemon until ctx ends. A bad configuration or a capture
// that cannot start returns an error before anything runs.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Check {
		return check(opts)
	}
	if opts.Replay != "" {
		return replayRun(ctx, opts)
	}
	d, err := start(opts)
	if err == nil && opts.Daemon {
		// Before Ready, so that the pid file exists when "knockd -d"
		// returns.
		defer d.writePidFile()()
	}
	if opts.Ready != nil {
		opts.Ready(err)
	}
	if err != nil {
		return err
	}
	return d.serve(ctx)
}

type daemon struct {
	opts   Options
	log    *klog.Logger
	cfg    *config.Config
	iface  string
	src    capture.Source
	runner *exec.Runner
	sets   *kset.Sets
	// openers are the runner and the sets, closed in that order at
	// shutdown. Each OPEN SESAME goes to both: to the sets from the
	// matcher's goroutine as soon as it is found (emit), to the runner
	// after its log lines (act).
	openers []exec.Opener
	matcher *match.Matcher
	steps   *stepStore // the used steps of time-derived doors
	// quietSource sends the source's log lines to -D only, while it
	// follows the steps of time-derived doors: the listener would log
	// its sockets' moves at every step, all day long.
	quietSource atomic.Bool
	loop        *match.Loop
	events      chan *capture.Batch
	acts        chan item
	// actsMu guards actsOpen, which says whether acts takes items (set
	// lines may come after serve closed it).
	actsMu   sync.RWMutex
	actsOpen bool
	names    *names
	flood    *floodGate
	evicted  uint64 // the matcher's evictions already summarised

	cfgMu   sync.Mutex // guards cfg for other goroutines than serve's
	ctl     *control.Server
	metrics *metrics
	count   *counters
	notify  *sdnotify.Notifier
	started time.Time
}

// config returns the configuration in force; safe on any goroutine.
func (d *daemon) config() *config.Config {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg
}

var zeroSet config.NFTSet

// withDefaults fills in the options left empty: standard output and
// error, and knockd's default configuration file.
func (opts Options) withDefaults() Options {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.ConfigPath == "" {
		opts.ConfigPath = "/etc/knockd.conf"
	}
	return opts
}

func start(opts Options) (*daemon, error) {
	opts = opts.withDefaults()
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	d := &daemon{opts: opts, cfg: cfg, count: newCounters(), started: time.Now()}
	if opts.NotifySocket != "" {
		d.notify = sdnotify.New(opts.NotifySocket)
	} else {
		d.notify = sdnotify.FromEnv()
	}

	json, err := d.jsonLogs(cfg)
	if err != nil {
		return nil, err
	}
	lo := klog.Options{Errors: opts.Stderr, LogFile: d.logFile(cfg), Syslog: cfg.UseSyslog, SyslogPath: opts.SyslogPath, JSON: json}
	if opts.Verbose {
		lo.Verbose = opts.Stdout
	}
	if opts.Debug {
		lo.Debug = opts.Stdout
	}
	// A log file that cannot be opened, or no system logger, is a
	// warning, as in knockd 0.8.
	d.log = klog.New(lo)
	fail := func(err error) (*daemon, error) {
		d.log.Close()
		return nil, err
	}
	for _, w := range cfg.Warnings {
		d.log.Error("warning: %s", w)
	}

	d.iface = d.interfaceOf(cfg)
	var ifaces []string
	if d.iface != "" && d.iface != "any" {
		ifaces = strings.Split(d.iface, ",")
	}

	// Without a stop command or a time-derived door there is nothing to
	// keep: the default state directory is used only if it exists, for
	// what an earlier run left.
	needState := hasStop(cfg.Doors) || hasDerived(cfg.Doors)
	stateDir, err := stateDir(opts.StateDir, cfg.StateDir, cfg.Path)
	if err != nil && needState {
		return fail(err)
	}
	d.runner, err = exec.New(exec.Options{
		Logf:           d.log.Log,
		MaxRunning:     cfg.MaxCommands,
		CommandLimit:   cfg.CommandLimit,
		StateDir:       stateDir,
		StateIfPresent: !needState,
		Stdout:         opts.Stdout,
		Stderr:         opts.Stderr,
	})
	if err != nil {
		return fail(err)
	}

	// The sets are checked before any socket is opened: a door whose set
	// is missing would open nothing.
	if d.sets, err = kset.New(cfg.Doors, kset.Options{Logf: d.setLine, Kernel: opts.kernel}); err != nil {
		d.runner.Close(context.Background())
		return fail(err)
	}
	d.openers = []exec.Opener{d.runner, d.sets}

	// The used steps are read before any socket is opened: a record that
	// cannot be trusted stops start-up, since its steps could be replayed.
	if d.steps, err = newStepStore(d.runner.StateDir(), cfg.Doors); err != nil {
		d.sets.Close(context.Background())
		d.runner.Close(context.Background())
		return fail(err)
	}

	d.matcher = match.New(cfg.Doors, match.Options{MaxAttempts: cfg.MaxAttempts, Steps: d.steps, Explain: opts.Debug})
	spec := capture.NewSpec(d.matcher.Doors(), ifaces, opts.IPv4Only)
	if d.src, err = d.openSource(spec); err != nil {
		return fail(err)
	}
	d.dump(spec)
	// The control socket and the metrics port are opened with the
	// capture's sockets: a daemon that started answers on them.
	if err := d.openControl(); err == nil {
		err = d.openMetrics()
	}
	if err != nil {
		d.src.Close()
		if d.ctl != nil {
			d.ctl.Close()
		}
		d.sets.Close(context.Background())
		d.runner.Close(context.Background())
		return fail(err)
	}
	d.warnUnsupported(cfg.Doors)
	d.warnMissingInterfaces(ifaces)
	if n, err := d.runner.Recover(); err != nil {
		d.log.Error("%v", err)
	} else if n > 0 {
		d.log.Log("%d stop command(s) left pending by an earlier run: running each at its time", n)
	}
	d.names = newNames(opts.Lookup, opts.lookupAddr)
	d.flood = newFloodGate(d.log)
	return d, nil
}

// stateDir picks where pending stop commands are kept: the flag, the
// configuration, else a subdirectory of systemd's $STATE_DIRECTORY, of
// /var/lib/knockd for root, or of the user's state directory, named for
// the configuration file (see stateName), so that instances with
// different configurations never share their state.
func stateDir(flag, conf, configPath string) (string, error) {
	switch {
	case flag != "":
		return flag, nil
	case conf != "":
		return conf, nil
	}
	base := ""
	if s := os.Getenv("STATE_DIRECTORY"); s != "" {
		base = strings.Split(s, ":")[0]
	} else if os.Geteuid() == 0 {
		base = "/var/lib/knockd"
	} else if s := os.Getenv("XDG_STATE_HOME"); s != "" {
		base = filepath.Join(s, "knockd")
	} else if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		base = filepath.Join(home, ".local", "state", "knockd")
	} else {
		return "", errors.New("no directory for the state of pending stop commands: set StateDir in [options], --state-dir, or StateDirectory= in the systemd unit")
	}
	return filepath.Join(base, stateName(configPath)), nil
}

// stateName names an instance's state directory after its configuration
// file: the absolute path with every character other than letters,
// digits, '.', '-' and '_' turned into '_', and 8 hex digits of its
// SHA-256 so that paths that read the same stay apart. /etc/knockd.conf
// gives etc_knockd.conf-59fb8fc5.
func stateName(configPath string) string {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		abs = filepath.Clean(configPath)
	}
	sum := sha256.Sum256([]byte(abs))
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, strings.TrimPrefix(abs, "/"))
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return fmt.Sprintf("%s-%x", name, sum[:4])
}

// hasDerived reports whether a door's sequences are time-derived, and
// so need the state directory for their used steps.
func hasDerived(doors []*config.Door) bool {
	for _, d := range doors {
		if d.SecretFile != "" {
			return true
		}
	}
	return false
}

// hasStop reports whether a door has a stop command, that is whether the
// daemon has state to keep.
func hasStop(doors []*config.Door) bool {
	for _, d := range doors {
		if d.StopCommand != "" || d.StopCommand6 != "" {
			return true
		}
	}
	return false
}

// writePidFile writes the pid file of -d and returns what removes it. As
// with knockd, a pid file that cannot be written is logged, not fatal.
func (d *daemon) writePidFile() (remove func()) {
	pid := d.opts.PidFile
	if pid == "" {
		pid = d.cfg.PidFile
	}
	if pid == "" {
		pid = config.DefaultPidFile
	}
	if err := os.WriteFile(pid, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		d.log.Error("could not create pid file %s: %v", pid, err)
		return func() {}
	}
	return func() { os.Remove(pid) }
}

func (d *daemon) serve(ctx context.Context) error {
	defer d.log.Close()
	d.log.Verbose("listening on %s...", listening(d.iface))
	d.log.Record("starting up, listening on %s", listening(d.iface))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Room for every batch a source has (rawsock has 16, the listener
	// 4), so that a reader hands a batch over without waiting while the
	// matcher works.
	d.events = make(chan *capture.Batch, 16)
	d.acts = make(chan item, 4096)
	d.actsMu.Lock()
	d.actsOpen = true
	d.actsMu.Unlock()
	d.loop = match.NewLoop(d.matcher, nil)

	var wg sync.WaitGroup
	var srcErr error
	if d.ctl != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.ctl.Serve(runCtx, d)
		}()
	}
	if d.metrics != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.metrics.serve()
		}()
	}
	if iv, ok := sdnotify.WatchdogInterval(); ok && d.notify != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.watchdog(runCtx, iv)
		}()
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := d.src.Run(runCtx, d.events); err != nil && runCtx.Err() == nil {
			srcErr = err
			stop()
		}
	}()
	go func() {
		defer wg.Done()
		d.loop.Run(runCtx, d.events, d.emit)
		d.actsMu.Lock()
		d.actsOpen = false
		close(d.acts)
		d.actsMu.Unlock()
	}()
	go func() {
		defer wg.Done()
		d.act()
	}()

	d.notify.Ready(d.summary())
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-d.opts.Reload:
			d.notify.Reloading()
			d.reload(runCtx)
			d.notify.Ready(d.summary())
		}
	}
	d.notify.Stopping()
	if d.metrics != nil {
		d.metrics.close()
	}
	stop()
	d.names.close()
	wg.Wait()
	if d.ctl != nil {
		d.ctl.Close()
	}
	d.src.Close()
	d.flood.close()

	d.log.Verbose("waiting for child processes...")
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range d.openers {
		if err := o.Close(closeCtx); err != nil {
			d.log.Error("%v", err)
		}
	}
	d.log.Verbose("closing...")
	d.log.Record("shutting down")
	if srcErr != nil {
		return fmt.Errorf("capture stopped: %w", srcErr)
	}
	return nil
}

// item is what act gets: an action of the matcher's, or a line of a set's
// worker, logged after the actions handed over before it.
type item struct {
	a    match.Action
	line string // when not "", a is unused
}

// emit runs on the matcher's goroutine: it thins out stage and timeout
// lines under a flood and hands the rest to act without blocking on DNS
// or commands. An opening also goes to the sets at once, right after its
// action: their workers add the knocker without waiting for act to wake
// up and write the lines before it (a third of the time from the knock to
// the element, on a two-CPU virtual machine), and their own lines go
// through act too, after that action's OPEN SESAME (setLine).
func (d *daemon) emit(acts []match.Action) {
	d.count.count(acts)
	for _, a := range acts {
		switch {
		case a.Kind == match.Stage && !d.flood.allow(stageLines),
			a.Kind == match.Timeout && !d.flood.allow(timeoutLines),
			(a.Kind == match.Ended || a.Kind == match.Ignored) && !d.flood.allow(explainLines):
			continue
		case a.Kind == match.NewSteps:
			d.quietSource.Store(true)
			d.updateSource()
			d.quietSource.Store(false)
		case a.Kind == match.NewSequence || a.Kind == match.Disabled:
			d.updateSource()
		}
		d.acts <- item{a: a}
		if a.Kind == match.Open {
			d.sets.Open(a.Door, a.Src, d.names.label(a.Src), a.Time)
		}
	}
	if n := d.matcher.Stats().Evicted; n != d.evicted {
		d.flood.count(evictions, int(n-d.evicted))
		d.evicted = n
	}
}

// act logs actions and runs commands, in order.
func (d *daemon) act() {
	runner := []exec.Opener{d.runner}
	for it := range d.acts {
		if it.line != "" {
			d.log.Log("%s", it.line)
			continue
		}
		d.do(it.a, runner)
	}
}

// setLine is the sets' log: their lines go through act, after the OPEN
// SESAME they follow, while it runs, and straight to the log otherwise.
func (d *daemon) setLine(format string, args ...any) {
	d.actsMu.RLock()
	if d.actsOpen {
		d.acts <- item{line: fmt.Sprintf(format, args...)}
		d.actsMu.RUnlock()
		return
	}
	d.actsMu.RUnlock()
	d.log.Log(format, args...)
}

// events are the JSON events of the knock lines.
var events = map[match.Kind]klog.Event{match.Stage: klog.EventStage, match.Open: klog.EventOpen, match.Timeout: klog.EventTimeout,
	match.Ended: klog.EventEnded, match.Ignored: klog.EventIgnored, match.Replay: klog.EventReplay, match.Stale: klog.EventReplay}

// do logs a and hands an opening to openers.
func (d *daemon) do(a match.Action, openers []exec.Opener) {
	switch a.Kind {
	case match.Stage, match.Timeout, match.Open, match.Replay, match.Stale:
		label := d.names.label(a.Src)
		d.log.LogEntry(klog.Entry{Event: events[a.Kind], Door: a.Door.Name, Src: a.Src, Stage: a.Stage, Msg: a.Line(label)})
		if a.Kind == match.Timeout && d.log.Debugging() {
			d.log.DebugEntry(klog.Entry{Event: klog.EventEnded, Door: a.Door.Name, Src: a.Src, Stage: a.Stage, Msg: a.Explanation(label)})
		}
		if a.Kind == match.Open {
			for _, o := range openers {
				o.Open(a.Door, a.Src, label, a.Time)
			}
		}
	case match.Ended, match.Ignored:
		d.log.DebugEntry(klog.Entry{Event: events[a.Kind], Door: a.Door.Name, Src: a.Src, Stage: a.Stage, Msg: a.Explanation(d.names.label(a.Src))})
	case match.Disabled:
		d.log.Error("%s", a.String())
		if cause := errors.Unwrap(a.Err); cause != nil {
			d.log.Error("%s: %v", a.Door.Name, cause)
		}
	case match.NewSequence:
		if a.Err != nil {
			d.log.Log("%s: %v", a.Door.Name, a.Err)
		}
		d.log.Debugf("%s", a.String())
	case match.NewSteps:
		d.log.Debugf("%s", a.String())
	}
}

// jsonLogs reports whether lines are JSON for cfg: --log-format wins
// over LogFormat.
func (d *daemon) jsonLogs(cfg *config.Config) (bool, error) {
	if d.opts.LogFormat == "" {
		return cfg.LogFormat == config.LogJSON, nil
	}
	f, err := config.ParseLogFormat(d.opts.LogFormat)
	if err != nil {
		return false, fmt.Errorf("--log-format: %w", err)
	}
	return f == config.LogJSON, nil
}

// updateSource makes the capture follow the matcher's current doors. It
// runs on the matcher's goroutine, as every capture update does, so that
// a one-time sequence moving on and a reload cannot undo each other.
func (d *daemon) updateSource() {
	if err := d.src.Update(d.spec(d.matcher.Doors())); err != nil {
		d.log.Error("cannot follow the new sequences: %v", err)
	}
}

func (d *daemon) spec(doors []*config.Door) capture.Spec {
	var ifaces []string
	if d.iface != "" && d.iface != "any" {
		ifaces = strings.Split(d.iface, ",")
	}
	return capture.NewSpec(doors, ifaces, d.opts.IPv4Only)
}

// reload re-reads the configuration. A bad one is logged and the running
// one stays (its log file is opened again all the same, for log
// rotation); a good one replaces the doors at once: attempts in progress
// on unchanged doors go on, the others end. Of [options], LogFile,
// UseSyslog, Interface, MaxAttempts, MaxCommands and CommandLimit take
// effect; those that cannot change while running (PidFile, StateDir,
// ControlSocket, MetricsAddress) are logged, one line each.
func (d *daemon) reload(ctx context.Context) {
	d.log.Log("re-reading config file: %s", d.opts.ConfigPath)
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.log.Reload(d.logFile(d.cfg), d.cfg.UseSyslog)
		d.log.Error("%v; keeping the running configuration", err)
		return
	}
	for _, w := range cfg.Warnings {
		d.log.Error("warning: %s", w)
	}
	if err := d.steps.load(cfg.Doors); err != nil {
		d.log.Reload(d.logFile(d.cfg), d.cfg.UseSyslog)
		d.log.Error("%v; keeping the running configuration", err)
		return
	}
	if err := d.sets.Update(cfg.Doors); err != nil {
		d.log.Reload(d.logFile(d.cfg), d.cfg.UseSyslog)
		d.log.Error("%v; keeping the running configuration", err)
		return
	}
	iface := d.interfaceOf(cfg)
	var updateErr error
	var ended []match.Action
	ran := d.loop.Do(ctx, func(m *match.Matcher) {
		// On the matcher's goroutine, like every capture update; d.iface
		// changes here too, since spec reads it there.
		old := d.iface
		d.iface = iface
		if updateErr = d.src.Update(d.spec(match.New(cfg.Doors, match.Options{MaxAttempts: 1, Steps: d.steps}).Doors())); updateErr != nil {
			d.iface = old
			return
		}
		m.Reload(cfg.Doors)
		ended = m.TakeEnded(nil)
		m.SetMaxAttempts(cfg.MaxAttempts)
		if hasDerived(cfg.Doors) {
			// The steps as the matcher chose them, a moment later.
			d.updateSource()
		}
	})
	if !ran {
		return // shutting down
	}
	if updateErr != nil {
		d.log.Reload(d.logFile(d.cfg), d.cfg.UseSyslog)
		d.log.Error("cannot watch the new configuration's ports: %v; keeping the running configuration", updateErr)
		return
	}
	for _, a := range ended {
		d.do(a, nil)
	}
	old := d.cfg
	d.cfgMu.Lock()
	d.cfg = cfg
	d.cfgMu.Unlock()
	if json, err := d.jsonLogs(cfg); err == nil {
		d.log.SetJSON(json)
	}
	d.log.Reload(d.logFile(cfg), cfg.UseSyslog)
	if now := listening(iface); now != listening(d.interfaceOf(old)) {
		d.log.Log("reload: now listening on %s", now)
	}
	d.flagWins("Interface", "-i", d.opts.Interface, old.Interface, cfg.Interface)
	d.flagWins("LogFile", "-g", d.opts.LogFile, old.LogFile, cfg.LogFile)
	d.flagWins("LogFormat", "--log-format", d.opts.LogFormat, old.LogFormat.String(), cfg.LogFormat.String())
	if d.opts.Daemon {
		d.fixed("PidFile", d.opts.PidFile, old.PidFile, cfg.PidFile, config.DefaultPidFile)
	}
	d.fixed("StateDir", d.opts.StateDir, old.StateDir, cfg.StateDir, "the default state directory")
	d.fixed("ControlSocket", d.opts.Control, old.ControlSocket, cfg.ControlSocket, "the default control socket")
	d.fixed("MetricsAddress", d.opts.Metrics, old.MetricsAddress, cfg.MetricsAddress, "no metrics")
	d.runner.SetLimits(cfg.MaxCommands, cfg.CommandLimit)
	d.warnUnsupported(cfg.Doors)
}

// flagWins logs that a changed [options] key has no effect because the
// command line set it.
func (d *daemon) flagWins(key, flag, flagValue, was, now string) {
	if flagValue != "" && was != now {
		d.log.Error("reload: %s ignored: %s %s on the command line wins", key, flag, flagValue)
	}
}

// fixed logs that a changed [options] key only takes effect at the next
// start (unless the command line sets it, which wins anyway).
func (d *daemon) fixed(key, flagValue, was, now, dflt string) {
	if flagValue != "" || was == now {
		return
	}
	if now == "" {
		now = dflt
	}
	d.log.Error("reload: %s cannot change while running; restart knockd to use %s", key, now)
}

// logFile is where lines go for cfg: -g wins over LogFile.
func (d *daemon) logFile(cfg *config.Config) string {
	if d.opts.LogFile != "" {
		return d.opts.LogFile
	}
	return cfg.LogFile
}

// interfaceOf is the interface list for cfg: -i wins over Interface.
func (d *daemon) interfaceOf(cfg *config.Config) string {
	if d.opts.Interface != "" {
		return d.opts.Interface
	}
	return cfg.Interface
}

// listening names iface as the log lines do: "any" for all interfaces.
func listening(iface string) string {
	if iface == "" {
		return "any"
	}
	return iface
}

// summary is the status line systemd shows: the doors, the backend, and
// what is open.
func (d *daemon) summary() string {
	cfg := d.config()
	return fmt.Sprintf("%d door(s) on %s (%s backend); %d opening(s) pending, %d attempt(s) in progress",
		len(cfg.Doors), listening(d.iface), d.src.Name(), len(d.runner.Pending())+len(d.sets.Pending()), d.loop.Stats().InProgress)
}

// watchdog tells systemd every interval that the daemon is alive: that
// the matcher still takes work, which a hung matcher would not.
func (d *daemon) watchdog(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		alive := d.loop.Do(pctx, func(*match.Matcher) {})
		cancel()
		if alive {
			d.notify.Watchdog()
			d.notify.Status(d.summary())
		}
	}
}

// Package knockd is the daemon: it wires the configuration, a capture
// backend, the matcher and the command runner, and handles reloads and
// shutdown. cmd/knockd only parses flags and signals.
package knockd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/exec"
	"github.com/knock-go/knock/internal/klog"
	"github.com/knock-go/knock/listener"
	"github.com/knock-go/knock/match"
	"github.com/knock-go/knock/rawsock"
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

	// Stdout and Stderr default to the process's.
	Stdout, Stderr io.Writer
	// Reload delivers one value per SIGHUP.
	Reload <-chan struct{}
	// Ready, when not nil, is called once start-up has succeeded (every
	// socket open), or failed, with the error.
	Ready func(error)
}

// Run runs the daemon until ctx ends. A bad configuration or a capture
// that cannot start returns an error before anything runs.
func Run(ctx context.Context, opts Options) (err error) {
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
	opts    Options
	log     *klog.Logger
	cfg     *config.Config
	iface   string
	src     capture.Source
	runner  *exec.Runner
	matcher *match.Matcher
	loop    *match.Loop
	events  chan *capture.Batch
	acts    chan match.Action
	names   *names
	flood   *floodGate
	evicted uint64 // the matcher's evictions already summarised
}

func start(opts Options) (*daemon, error) {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.ConfigPath == "" {
		opts.ConfigPath = "/etc/knockd.conf"
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	d := &daemon{opts: opts, cfg: cfg}

	lo := klog.Options{Errors: opts.Stderr, LogFile: cfg.LogFile, Syslog: cfg.UseSyslog}
	if opts.LogFile != "" {
		lo.LogFile = opts.LogFile
	}
	if opts.Verbose {
		lo.Verbose = opts.Stdout
	}
	if opts.Debug {
		lo.Debug = opts.Stdout
	}
	if d.log, err = klog.New(lo); err != nil {
		return nil, err
	}
	fail := func(err error) (*daemon, error) {
		d.log.Close()
		return nil, err
	}
	for _, w := range cfg.Warnings {
		d.log.Error("warning: %s", w)
	}

	d.iface = opts.Interface
	if d.iface == "" {
		d.iface = cfg.Interface
	}
	var ifaces []string
	if d.iface != "" && d.iface != "any" {
		ifaces = strings.Split(d.iface, ",")
	}

	stateDir, err := stateDir(opts.StateDir, cfg.StateDir)
	if err != nil {
		return fail(err)
	}
	d.runner, err = exec.New(exec.Options{
		Logf:       d.log.Log,
		MaxRunning: cfg.MaxCommands,
		StateDir:   stateDir,
		Stdout:     opts.Stdout,
		Stderr:     opts.Stderr,
	})
	if err != nil {
		return fail(fmt.Errorf("%w (set StateDir in [options] or --state-dir to a writable directory)", err))
	}

	d.matcher = match.New(cfg.Doors, match.Options{MaxAttempts: cfg.MaxAttempts})
	spec := capture.NewSpec(d.matcher.Doors(), ifaces, opts.IPv4Only)
	if d.src, err = d.openSource(spec); err != nil {
		return fail(err)
	}
	d.warnUnsupported(cfg.Doors)
	if n, err := d.runner.Recover(); err != nil {
		d.log.Error("%v", err)
	} else if n > 0 {
		d.log.Log("%d stop command(s) left pending by an earlier run: running each at its time", n)
	}
	d.names = newNames(opts.Lookup)
	d.flood = newFloodGate(d.log)
	return d, nil
}

// openSource opens the capture backend asked for, or for auto the raw one
// when this process may, else the listener.
func (d *daemon) openSource(spec capture.Spec) (capture.Source, error) {
	logf := func(format string, args ...any) { d.log.Log(format, args...) }
	switch d.opts.Backend {
	case "", "auto":
		if err := rawsock.Available(); err != nil {
			why := err.Error()
			if errors.Is(err, os.ErrPermission) {
				why = "no CAP_NET_RAW for packet sockets"
			}
			d.log.Log("backend: listener (raw backend unavailable: %s)", why)
			return listener.New(spec, listener.Options{Logf: logf})
		}
		d.log.Log("backend: raw (this process may open packet sockets)")
		return rawsock.New(spec, rawsock.Options{Logf: logf})
	case "raw":
		return rawsock.New(spec, rawsock.Options{Logf: logf})
	case "listener":
		return listener.New(spec, listener.Options{Logf: logf})
	}
	return nil, fmt.Errorf("unknown backend %q: use auto, raw or listener", d.opts.Backend)
}

// stateDir picks where pending stop commands are kept: the flag, the
// configuration, systemd's $STATE_DIRECTORY, /var/lib/knockd for root,
// else the user's state directory.
func stateDir(flag, conf string) (string, error) {
	switch {
	case flag != "":
		return flag, nil
	case conf != "":
		return conf, nil
	}
	if s := os.Getenv("STATE_DIRECTORY"); s != "" {
		return strings.Split(s, ":")[0], nil
	}
	if os.Geteuid() == 0 {
		return "/var/lib/knockd", nil
	}
	if s := os.Getenv("XDG_STATE_HOME"); s != "" {
		return filepath.Join(s, "knockd"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		return "", errors.New("no directory for the state of pending stop commands: set StateDir in [options] or --state-dir")
	}
	return filepath.Join(home, ".local", "state", "knockd"), nil
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
	listening := d.iface
	if listening == "" {
		listening = "any"
	}
	d.log.Verbose("listening on %s...", listening)
	d.log.Record("starting up, listening on %s", listening)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Room for every batch a source has (rawsock has 16, the listener
	// 4), so that a reader hands a batch over without waiting while the
	// matcher works.
	d.events = make(chan *capture.Batch, 16)
	d.acts = make(chan match.Action, 4096)
	d.loop = match.NewLoop(d.matcher, nil)

	var wg sync.WaitGroup
	var srcErr error
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
		close(d.acts)
	}()
	go func() {
		defer wg.Done()
		d.act()
	}()

	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-d.opts.Reload:
			d.reload(runCtx)
		}
	}
	stop()
	wg.Wait()
	d.flood.close()

	d.log.Verbose("waiting for child processes...")
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.runner.Close(closeCtx); err != nil {
		d.log.Error("%v", err)
	}
	d.log.Verbose("closing...")
	d.log.Record("shutting down")
	if srcErr != nil {
		return fmt.Errorf("capture stopped: %w", srcErr)
	}
	return nil
}

// emit runs on the matcher's goroutine: it thins out stage and timeout
// lines under a flood and hands the rest to act without blocking on DNS or commands.
func (d *daemon) emit(acts []match.Action) {
	for _, a := range acts {
		switch {
		case a.Kind == match.Stage && !d.flood.allow(stageLines),
			a.Kind == match.Timeout && !d.flood.allow(timeoutLines):
			continue
		case a.Kind == match.NewSequence || a.Kind == match.Disabled:
			d.updateSource()
		}
		d.acts <- a
	}
	if n := d.matcher.Stats().Evicted; n != d.evicted {
		d.flood.count(evictions, int(n-d.evicted))
		d.evicted = n
	}
}

// act logs actions and runs commands, in order.
func (d *daemon) act() {
	for a := range d.acts {
		switch a.Kind {
		case match.Stage:
			d.log.Log("%s: %s: Stage %d", d.names.label(a.Src), a.Door.Name, a.Stage)
		case match.Timeout:
			d.log.Log("%s: %s: sequence timeout (stage %d)", d.names.label(a.Src), a.Door.Name, a.Stage)
		case match.Open:
			label := d.names.label(a.Src)
			d.log.Log("%s: %s: OPEN SESAME", label, a.Door.Name)
			d.runner.Open(a.Door, a.Src, label, a.Time)
		case match.Disabled:
			d.log.Error("%s", a.String())
			if cause := errors.Unwrap(a.Err); cause != nil {
				d.log.Error("%s: %v", a.Door.Name, cause)
			}
		case match.NewSequence:
			d.log.Debugf("%s", a.String())
		}
	}
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
// one stays; a good one replaces the doors at once: attempts in progress
// on unchanged doors go on, the others end.
func (d *daemon) reload(ctx context.Context) {
	d.log.Log("re-reading config file: %s", d.opts.ConfigPath)
	if err := d.log.Reopen(); err != nil {
		d.log.Error("%v", err)
	}
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.log.Error("%v; keeping the running configuration", err)
		return
	}
	for _, w := range cfg.Warnings {
		d.log.Error("warning: %s", w)
	}
	var updateErr error
	d.loop.Do(ctx, func(m *match.Matcher) {
		// On the matcher's goroutine, like every capture update.
		if updateErr = d.src.Update(d.spec(cfg.Doors)); updateErr == nil {
			m.Reload(cfg.Doors)
			m.SetMaxAttempts(cfg.MaxAttempts)
		}
	})
	if updateErr != nil {
		d.log.Error("cannot watch the new configuration's ports: %v; keeping the running configuration", updateErr)
		return
	}
	d.cfg = cfg
	d.warnUnsupported(cfg.Doors)
}

// warnUnsupported reports the doors the listener backend can never open.
func (d *daemon) warnUnsupported(doors []*config.Door) {
	if d.src.Name() != "listener" {
		return
	}
	for _, door := range doors {
		if why := listener.Unsupported(door); why != "" {
			d.log.Error("warning: door %s: %s", door.Name, why)
		}
	}
}

// names renders knockers for log lines: "IP", or with -l "IP (host)".
type names struct {
	lookup bool
	cache  map[netip.Addr]string
}

func newNames(lookup bool) *names {
	return &names{lookup: lookup, cache: map[netip.Addr]string{}}
}

func (n *names) label(ip netip.Addr) string {
	if !n.lookup {
		return ip.String()
	}
	if l, ok := n.cache[ip]; ok {
		return l
	}
	l := ip.String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if hosts, err := net.DefaultResolver.LookupAddr(ctx, ip.String()); err == nil && len(hosts) > 0 {
		l = fmt.Sprintf("%s (%s)", ip, strings.TrimSuffix(hosts[0], "."))
	}
	if len(n.cache) > 4096 {
		clear(n.cache)
	}
	n.cache[ip] = l
	return l
}

package knockd

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/exec"
	"github.com/knock-go/knock/internal/klog"
	"github.com/knock-go/knock/kset"
	"github.com/knock-go/knock/match"
	"github.com/knock-go/knock/replay"
)

// replayRun is knockd --replay: it reads the knocks of a capture file
// (replay.Source) and prints, on standard output and in the capture's
// time, the lines the daemon would have logged with -v (and -D), the
// timeouts and stop commands that fall after the capture's end included.
// It needs no privilege and changes nothing: no command runs (the lines
// say which would), one-time files are read and never marked, and no
// state directory, pid file, log file or syslog is used.
func replayRun(ctx context.Context, opts Options) error {
	opts = opts.withDefaults()
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	d := &daemon{opts: opts, cfg: cfg}
	json, err := d.jsonLogs(cfg)
	if err != nil {
		return err
	}
	var clock time.Time
	lo := klog.Options{Verbose: opts.Stdout, Errors: opts.Stderr, JSON: json, Stamped: true, Now: func() time.Time {
		if clock.IsZero() {
			// Before the first packet (the -D dump): the time of the
			// replay itself.
			return time.Now()
		}
		return clock
	}}
	if opts.Debug {
		lo.Debug = opts.Stdout
	}
	d.log = klog.New(lo)
	defer d.log.Close()
	for _, w := range cfg.Warnings {
		d.log.Error("warning: %s", w)
	}
	d.iface = d.interfaceOf(cfg)
	d.matcher = match.New(cfg.Doors, match.Options{MaxAttempts: cfg.MaxAttempts, Explain: opts.Debug, OneTime: config.PeekOneTime})
	spec := d.spec(d.matcher.Doors())
	src, err := replay.Open(opts.Replay, spec)
	if err != nil {
		return err
	}
	defer src.Close()
	d.src = src
	d.names = newNames(opts.Lookup, opts.lookupAddr)
	defer d.names.close()
	fmt.Fprintf(opts.Stderr, "replaying %s against %s: no command is run, no file is written\n", opts.Replay, opts.ConfigPath)
	d.dump(spec)

	dry := &dryRun{log: d.log}
	openers := []exec.Opener{dry}
	var acts []match.Action
	handle := func() {
		for _, a := range acts {
			if a.Kind == match.NewSequence || a.Kind == match.Disabled {
				d.updateSource()
			}
			d.do(a, openers)
		}
		acts = acts[:0]
	}
	// timers runs what falls due up to until: the matcher's timeouts and
	// the stop commands, in the order of their times.
	timers := func(until time.Time, end bool) {
		for {
			md, mok := d.matcher.NextDeadline()
			sd, sok := dry.next()
			switch {
			case mok && (end || !md.After(until)) && (!sok || !sd.Before(md)):
				clock = md
				acts = d.matcher.Expire(md, acts)
				handle()
			case sok && (end || !sd.After(until)):
				clock = sd
				dry.fire()
			default:
				return
			}
		}
	}
	for ctx.Err() == nil {
		ev, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		timers(ev.Time, false)
		if ev.Time.After(clock) {
			clock = ev.Time
		}
		acts = d.matcher.Handle(ev, acts)
		handle()
	}
	if ctx.Err() != nil {
		return nil // interrupted: what falls due later is not printed
	}
	timers(time.Time{}, true)
	packets, knocks := src.Counts()
	fmt.Fprintf(opts.Stderr, "replayed %d packets, %d of them knocks on the doors' ports\n", packets, knocks)
	return nil
}

// dryRun is the Opener of --replay: it logs the command lines the
// daemon's runner would log, and runs nothing.
type dryRun struct {
	log   *klog.Logger
	stops stopHeap
	seq   int
}

// Open logs the start command, and keeps the stop command for its time.
func (r *dryRun) Open(d *config.Door, src netip.Addr, label string, now time.Time) {
	start, stop := d.Commands(src)
	if start != "" {
		r.log.Log("%s (not run: replay)", exec.RunningLine(d.Name, start))
	}
	for _, l := range kset.AddingLines(d, src) {
		r.log.Log("%s (not done: replay)", l)
	}
	if stop != "" {
		r.seq++
		heap.Push(&r.stops, dryStop{due: now.Add(d.CmdTimeout), seq: r.seq, door: d.Name, label: label, cmd: stop})
	}
}

// Close does nothing.
func (r *dryRun) Close(context.Context) error { return nil }

// next returns when the next stop command is due.
func (r *dryRun) next() (time.Time, bool) {
	if len(r.stops) == 0 {
		return time.Time{}, false
	}
	return r.stops[0].due, true
}

// fire logs the next stop command.
func (r *dryRun) fire() {
	s := heap.Pop(&r.stops).(dryStop)
	r.log.Log("%s", exec.TimeoutLine(s.label, s.door))
	r.log.Log("%s (not run: replay)", exec.RunningLine(s.door, s.cmd))
}

type dryStop struct {
	due              time.Time
	seq              int
	door, label, cmd string
}

type stopHeap []dryStop

func (h stopHeap) Len() int { return len(h) }
func (h stopHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h stopHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *stopHeap) Push(x any)   { *h = append(*h, x.(dryStop)) }
func (h *stopHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

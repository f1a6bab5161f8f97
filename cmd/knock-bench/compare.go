//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// -compare: the flood phase alone, for two or more builds of our knockd
// in turn, several rounds, to tell a change's cost per packet from the
// machine's noise. Every run gets the same flood (the same seed, the same
// rate), so each build is handed the same packets at the same pace; the
// builds take turns, so that a machine that slows down or speeds up
// during the comparison slows every build alike.

// build is one binary of -compare.
type build struct{ name, path string }

// parseBuilds parses -compare's NAME=PATH,NAME=PATH.
func parseBuilds(s string) ([]build, error) {
	var bs []build
	for _, f := range strings.Split(s, ",") {
		name, path, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("%q is not NAME=PATH", f)
		}
		if name == "knockd" || strings.ContainsAny(name, "/ ") {
			return nil, fmt.Errorf("%q: a name may not be knockd nor hold a slash or a space", name)
		}
		if slices.ContainsFunc(bs, func(b build) bool { return b.name == name }) {
			return nil, fmt.Errorf("%q named twice", name)
		}
		bs = append(bs, build{name, path})
	}
	if len(bs) < 1 {
		return nil, errors.New("no build")
	}
	return bs, nil
}

// compareSeed is the seed of every -compare flood.
const compareSeed = 0x6b6e6f636b

// compareRun is one flood of one build.
type compareRun struct {
	build, tag string
	round      int
	res        *result
	// instructions counts what the daemon ran, from its start to its
	// exit (cachegrind); 0 without -cachegrind.
	instructions uint64
}

func (c *compareRun) processed() uint64 { return c.res.processed() }

// cpuPerM is the daemon's CPU time per million packets processed, s.
func (c *compareRun) cpuPerM() float64 {
	if c.processed() == 0 {
		return 0
	}
	return c.res.cpu.Seconds() / float64(c.processed()) * 1e6
}

// switchesPerK is the daemon's context switches per thousand packets
// processed: how often its threads slept or were put off a CPU.
func (c *compareRun) switchesPerK() float64 {
	if c.processed() == 0 {
		return 0
	}
	return float64(c.res.floodSwitches) / float64(c.processed()) * 1e3
}

// irPerPacket is the instructions per packet processed.
func (c *compareRun) irPerPacket() float64 {
	if c.processed() == 0 {
		return 0
	}
	return float64(c.instructions) / float64(c.processed())
}

// compare runs o.compare's builds' floods, o.rounds times in turn, and
// prints each run and the medians.
func compare(ctx context.Context, o options, e *env) error {
	for _, b := range o.compare {
		if _, err := os.Stat(b.path); err != nil {
			return fmt.Errorf("-compare %s: %w", b.name, err)
		}
	}
	var runs []*compareRun
	for round := 1; round <= o.rounds; round++ {
		for _, b := range o.compare {
			c := &compareRun{build: b.name, round: round, tag: fmt.Sprintf("%s-%d", b.name, round)}
			if err := compareOne(ctx, o, e, b, c); err != nil {
				// Once more, from a fresh start: a run that failed
				// is not counted.
				if ctx.Err() != nil {
					return err
				}
				logf("%s: %v; once more", c.tag, err)
				c.tag += "b"
				if err := compareOne(ctx, o, e, b, c); err != nil {
					return fmt.Errorf("%s, round %d: %w", b.name, round, err)
				}
			}
			runs = append(runs, c)
			logf("%s: %s packets processed, CPU %.3f s, %.3f s per million%s", c.tag, num(int(c.processed())),
				c.res.cpu.Seconds(), c.cpuPerM(), irNote(c))
		}
	}
	printCompare(os.Stdout, o, runs)
	return nil
}

func irNote(c *compareRun) string {
	if c.instructions == 0 {
		return ""
	}
	return fmt.Sprintf(", %s instructions in the whole run, %.0f per packet", num(int(c.instructions)), c.irPerPacket())
}

// compareOne starts b, floods it once and stops it.
func compareOne(ctx context.Context, o options, e *env, b build, c *compareRun) error {
	var env, wrap []string
	if o.cpuprofile != "" {
		env = append(env, "KNOCKD_CPUPROFILE="+filepath.Join(o.cpuprofile, c.tag+".pprof"))
	}
	cgOut := ""
	if o.cachegrind != "" {
		// Go's asynchronous preemption is a signal (SIGURG) at any
		// instruction; without it the scheduler preempts at function
		// calls only, the same for every build, and valgrind has fewer
		// signals to deliver.
		env = append(env, "GODEBUG=asyncpreemptoff=1")
		cgOut = filepath.Join(o.cachegrind, "cachegrind."+c.tag)
		wrap = []string{"valgrind", "--tool=cachegrind", "--cache-sim=no", "--branch-sim=no", "--cachegrind-out-file=" + cgOut}
	}
	d, err := e.startDaemonWith(ctx, o, b.name, b.path, e.conf, c.tag, nil, env, wrap)
	if err != nil {
		return err
	}
	defer d.stop()
	logf("%s: running (pid %d)", c.tag, d.pid)
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	c.res = &result{name: c.tag}
	if err := floodWith(ctx, o, e, d.proc, d.logPath, c.res, compareSeed); err != nil {
		return d.fail(err)
	}
	if cgOut != "" {
		// Cachegrind writes its counts when the daemon exits.
		d.stop()
		if c.instructions, err = cachegrindTotal(cgOut); err != nil {
			return d.fail(err)
		}
	}
	if c.res.opened != o.legit {
		logf("%s: %d of %d legitimate sequences opened the door", c.tag, c.res.opened, o.legit)
	}
	return nil
}

// cachegrindTotal returns the instructions (Ir) that a cachegrind
// output file counted: its "summary:" line.
func cachegrindTotal(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "summary:"); ok {
			if fs := strings.Fields(v); len(fs) > 0 {
				return strconv.ParseUint(fs[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no summary line", path)
}

// printCompare prints every run, then per build the median and the range
// of its CPU (and instructions) per packet, and each build's median
// ratio to the first build's run of the same round.
func printCompare(w io.Writer, o options, runs []*compareRun) {
	fmt.Fprintf(w, "%s, %d CPUs, %s; %s.\n", cpuModel(), runtime.NumCPU(), kernel(), runtime.Version())
	rate := "as fast as the generator goes"
	if o.floodRate > 0 {
		rate = fmt.Sprintf("at %s frames a second", num(o.floodRate))
	}
	fmt.Fprintf(w, "Flood: %s spoofed SYNs and %d legitimate sequences, %s, the same frames every run; the builds in turn, %d rounds.\n\n",
		num(o.floodPackets), o.legit, rate, o.rounds)
	cg := o.cachegrind != ""
	fmt.Fprintln(w, "| Round | Build | Sent, frames/s | Processed | Dropped | Opened | CPU, s | CPU per million processed, s | Context switches per thousand processed |"+ifs(cg, " Instructions, whole run, per packet processed |"))
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|"+ifs(cg, "---|"))
	for _, c := range runs {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %d/%d | %.3f | %.3f | %.1f |%s\n", c.round, c.build,
			num(int(float64(c.res.gen.sent)/c.res.gen.took.Seconds())), num(int(c.processed())),
			num(int(c.res.sock.drops)), c.res.opened, o.legit, c.res.cpu.Seconds(), c.cpuPerM(), c.switchesPerK(),
			ifs(cg, fmt.Sprintf(" %.0f |", c.irPerPacket())))
	}
	fmt.Fprintln(w)
	first := o.compare[0].name
	fmt.Fprintf(w, "| Build | CPU per million processed, s: median (min–max) | ratio to %s, same round: median (min–max) |%s\n", first,
		ifs(cg, fmt.Sprintf(" Instructions per packet: median (min–max) | ratio to %s: median (min–max) |", first)))
	fmt.Fprintln(w, "|---|---|---|"+ifs(cg, "---|---|"))
	for _, b := range o.compare {
		var cpu, ratio, ir, irRatio []float64
		for _, c := range runs {
			if c.build != b.name {
				continue
			}
			cpu = append(cpu, c.cpuPerM())
			ir = append(ir, c.irPerPacket())
			for _, f := range runs {
				if f.build == first && f.round == c.round {
					if f.cpuPerM() > 0 {
						ratio = append(ratio, c.cpuPerM()/f.cpuPerM())
					}
					if f.irPerPacket() > 0 {
						irRatio = append(irRatio, c.irPerPacket()/f.irPerPacket())
					}
				}
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s |%s\n", b.name, spread(cpu, "%.3f"), spread(ratio, "%.3f"),
			ifs(cg, fmt.Sprintf(" %s | %s |", spread(ir, "%.0f"), spread(irRatio, "%.4f"))))
	}
	fmt.Fprintln(w)
}

func ifs(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

// spread prints the median of xs and their range.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "—"
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	n := len(xs)
	med := xs[n/2]
	if n%2 == 0 {
		med = (xs[n/2-1] + xs[n/2]) / 2
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", med, xs[0], xs[n-1])
}

//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// options are the command's flags.
type options struct {
	floodPackets int
	legit        int
	knockGap     int
	latency      int
	latencyGap   time.Duration
	idle         time.Duration
	drain        time.Duration
	seqTimeout   int
	knockd       string
	ours         string
	only         string
	matcher      bool
	benchtime    string
	perfDir      string
	keep         bool
	pin          bool
	timeout      time.Duration

	compare    []build
	rounds     int
	floodRate  int
	cpuprofile string
	cachegrind string

	storm           int
	stormRate       int
	stormKnocks     int
	stormWait       time.Duration
	surviveGaps     []int
	surviveKnockers int
	surviveWarmup   int

	ksets         bool
	ksetsOnly     bool
	ksetCrowd     int
	ksetCap       time.Duration
	ksetOpenings  int
	metricsRounds int
}

func main() {
	var o options
	flag.IntVar(&o.floodPackets, "flood", 1_000_000, "spoofed-source SYN packets in the flood")
	flag.IntVar(&o.legit, "legit", 20, "legitimate knock sequences sent during the flood, evenly spread")
	flag.IntVar(&o.knockGap, "knock-gap", 1000, "flood packets between two knocks of a legitimate sequence")
	flag.IntVar(&o.latency, "openings", 200, "openings timed for the latency")
	flag.DurationVar(&o.latencyGap, "opening-gap", 10*time.Millisecond, "pause between two timed openings")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "how long each daemon is watched idle")
	flag.DurationVar(&o.drain, "drain", 60*time.Second, "longest wait, after the flood, for a daemon to go quiet")
	flag.IntVar(&o.seqTimeout, "seq-timeout", 10, "Seq_Timeout of the flooded door, in seconds; the CPU its expiry costs is measured too")
	flag.StringVar(&o.knockd, "knockd", "/usr/sbin/knockd", "Debian's knockd 0.8")
	flag.StringVar(&o.ours, "ours", "", "our knockd binary (default: built from ./cmd/knockd)")
	flag.StringVar(&o.only, "only", "", "run one daemon only: knockd or ours")
	flag.BoolVar(&o.matcher, "matcher", true, "run the matcher benchmarks")
	flag.StringVar(&o.benchtime, "benchtime", "1s", "-benchtime of the matcher benchmarks")
	flag.StringVar(&o.perfDir, "perf", "", "record the whole machine (perf record -a -g) during each daemon's flood into this directory")
	flag.BoolVar(&o.pin, "pin", false, "run the generator on CPU 0 and the daemon on CPU 1 only (taskset), so that neither takes the other's core")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (configurations, logs) and say where")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "stop everything after this long")
	flag.IntVar(&o.storm, "storm", 2000, "spoofed UDP datagrams in the storm on the one-port door whose command is sleep 1 (0: no storm)")
	flag.IntVar(&o.stormRate, "storm-rate", 2000, "datagrams a second in the storm")
	flag.IntVar(&o.stormKnocks, "storm-knocks", 5, "knocks on the latency door during the storm, evenly spread, one source address each (at most 200)")
	flag.DurationVar(&o.stormWait, "storm-wait", 10*time.Second, "longest wait, after the storm, for the latency door's commands")
	gaps := flag.String("survive", "50000,100000,200000,300000,400000,500000,600000,800000,1000000",
		"pauses between knocks tried in the survival flood, in spoofed frames, ascending (-survive= with nothing: no survival flood)")
	flag.IntVar(&o.surviveKnockers, "survive-knockers", 2, "knockers per pause in the survival flood")
	flag.IntVar(&o.surviveWarmup, "survive-warmup", 500_000, "spoofed frames of the survival flood before the knockers start")
	flag.BoolVar(&o.ksets, "ksets", true, "run the kernel-set phase: openings into an nftables set and an ipset, by NFT_Set/IPSet doors and by shell commands")
	flag.BoolVar(&o.ksetsOnly, "ksets-only", false, "run the kernel-set phase only")
	flag.IntVar(&o.ksetCrowd, "kset-crowd", 10000, "sources in the kernel-set phase's crowd, each completing a two-knock sequence, all within one second (at most 65,000)")
	flag.DurationVar(&o.ksetCap, "kset-cap", 30*time.Second, "longest wait, from the crowd's first frame, for all its sources to be in the set")
	flag.IntVar(&o.ksetOpenings, "kset-openings", 200, "openings timed into the nftables set, one source each (at most 500)")
	builds := flag.String("compare", "", "run only the flood phase, for each `NAME=PATH,...` (comma-separated builds of our knockd) in turn, -rounds times, and print each run's CPU per million packets processed, their medians and ratios to the first build (no knockd 0.8, no other phase)")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of -compare")
	flag.IntVar(&o.floodRate, "flood-rate", 0, "frames a second of the flood (0: as fast as the generator goes)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "with -compare: each daemon writes a CPU profile ($KNOCKD_CPUPROFILE) into this directory, NAME-ROUND.pprof")
	flag.StringVar(&o.cachegrind, "cachegrind", "", "with -compare: run each daemon under valgrind --tool=cachegrind and count the instructions of its whole run (start, flood, stop), per packet processed; its files go into this directory")
	flag.IntVar(&o.metricsRounds, "metrics-rounds", 2, "rounds of the metrics phase: ours flooded with metrics off and with metrics on, scraped every second (0: no metrics phase)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./cmd/knock-bench [flags] (as root, from the module's root)\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	var err error
	if o.surviveGaps, err = parseCounts(*gaps); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -survive: %v\n", err)
		os.Exit(2)
	}
	if *builds != "" {
		if o.compare, err = parseBuilds(*builds); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -compare: %v\n", err)
			os.Exit(2)
		}
	}
	if (o.cpuprofile != "" || o.cachegrind != "") && len(o.compare) == 0 {
		fmt.Fprintf(os.Stderr, "bench: -cpuprofile and -cachegrind go with -compare\n")
		os.Exit(2)
	}
	if flag.NArg() > 0 || o.rounds < 1 || o.floodRate < 0 || (o.only != "" && o.only != "knockd" && o.only != "ours") ||
		o.floodPackets < 1 || o.legit < 0 || o.latency < 1 || o.seqTimeout < 1 ||
		o.storm < 0 || o.stormRate < 1 || o.stormKnocks < 1 || o.stormKnocks > 200 || o.stormWait <= 0 ||
		o.surviveKnockers < 1 || o.surviveWarmup < 0 || o.metricsRounds < 0 || o.surviveKnockers*len(o.surviveGaps) > 3000 ||
		o.ksetCrowd < 1 || o.ksetCrowd > 65000 || o.ksetCap <= 0 || o.ksetCap > time.Minute || o.ksetOpenings < 1 || o.ksetOpenings > 500 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		cancel()
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, o options) (err error) {
	if err := netlab.Available(); err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "knock-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		defer logf("working directory kept: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.ours == "" && o.only != "knockd" && len(o.compare) == 0 {
		o.ours = filepath.Join(dir, "knockd-go")
		logf("building ours: go build -o %s ./cmd/knockd", o.ours)
		if out, err := goCmd(ctx, root, "build", "-o", o.ours, "./cmd/knockd"); err != nil {
			return fmt.Errorf("building ./cmd/knockd: %w\n%s", err, out)
		}
	}
	if o.only != "ours" && len(o.compare) == 0 {
		if _, err := os.Stat(o.knockd); err != nil {
			return fmt.Errorf("%w (apt-get install knockd)", err)
		}
	}

	removeStale()
	l, err := newLab()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	logf("namespaces %s (%v) and %s (%v), joined by %s", l.client, clientAddr, l.server, serverAddr, l.veth.A.Dev)

	e, err := newEnv(l, dir, o)
	if err != nil {
		return err
	}
	defer e.Close()

	if len(o.compare) > 0 {
		for _, d := range []string{o.cpuprofile, o.cachegrind} {
			if d != "" {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
		}
		return compare(ctx, o, e)
	}

	r := report{opts: o, started: time.Now()}
	if o.ksetsOnly {
		if r.ksets, err = ksets(ctx, o, e); err != nil {
			return err
		}
		r.took = time.Since(r.started)
		r.printKsets(os.Stdout)
		return nil
	}
	logf("generator baseline: %d packets with no daemon running", o.floodPackets)
	if r.baseline, err = baseline(ctx, l, newPlan(o, l)); err != nil {
		return fmt.Errorf("generator baseline: %w", err)
	}
	if len(o.surviveGaps) > 0 {
		p := survivalPlan(o, l)
		p.knocks, p.spoofed = nil, o.floodPackets
		logf("generator baseline: %d IPv6 packets, as in the survival flood, with no daemon running", o.floodPackets)
		if r.baseline6, err = baseline(ctx, l, p); err != nil {
			return fmt.Errorf("generator baseline: %w", err)
		}
	}
	logf("timing %d starts of the latency door's start command alone", o.latency)
	if r.shell, err = shellFloor(ctx, e, o.latency, o.latencyGap); err != nil {
		return fmt.Errorf("timing the shell alone: %w", err)
	}
	for _, d := range []struct{ name, bin string }{{"knockd", o.knockd}, {"ours", o.ours}} {
		if o.only != "" && o.only != d.name {
			continue
		}
		res, err := measure(ctx, o, e, d.name, d.bin)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		if d.name == "knockd" {
			r.knockd = res
		} else {
			r.ours = res
		}
	}
	if o.metricsRounds > 0 && o.only != "knockd" {
		if r.metrics, err = metricsCost(ctx, o, e, o.ours); err != nil {
			return fmt.Errorf("metrics phase: %w", err)
		}
	}
	if o.ksets {
		if r.ksets, err = ksets(ctx, o, e); err != nil {
			return err
		}
	}
	if o.matcher {
		logf("matcher: go test -run '^$' -bench BenchmarkHandle -benchmem -cpu 1 -benchtime %s ./match/", o.benchtime)
		if r.matcher, err = runMatcherBench(ctx, root, o.benchtime); err != nil {
			return err
		}
	}
	r.took = time.Since(r.started)
	r.print(os.Stdout)
	return nil
}

// moduleRoot returns the directory of the module this command belongs to,
// as the go command sees it from here.
func moduleRoot() (string, error) {
	out, err := goCmd(context.Background(), "", "env", "GOMOD")
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w: %s", err, out)
	}
	mod := strings.TrimSpace(out)
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run this from within the module (go run ./cmd/knock-bench)")
	}
	return filepath.Dir(mod), nil
}

func goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The doors both daemons run. The latency door opens on one UDP
// datagram; the flood hits the first port of the other.
const (
	latencyPort = 5000
	floodPort   = 7000
)

var floodSequence = []uint16{7000, 8000, 9000}

// env is what every daemon's run shares: the lab, the configuration and
// the files its start commands write.
type env struct {
	lab    *lab
	dir    string
	conf   string
	conf2  string // conf and the stormed door, for the second run
	base   string // conf's text, which the kernel-set runs add doors to
	opened string // the flooded door's start command appends %IP% here
	fifo   *fifo  // the latency door's start command echoes into it
}

func newEnv(l *lab, dir string, o options) (*env, error) {
	e := &env{lab: l, dir: dir, conf: filepath.Join(dir, "knockd.conf"), conf2: filepath.Join(dir, "knockd-2.conf"), opened: filepath.Join(dir, "opened")}
	fifoPath := filepath.Join(dir, "latency.fifo")
	conf := fmt.Sprintf(`# Written by cmd/knock-bench: the same file for knockd 0.8 and ours.
[latency]
	Sequence      = %d:udp
	Seq_Timeout   = 5
	Start_Command = echo %%IP%% > %s

[flood]
	Sequence      = %d,%d,%d
	Seq_Timeout   = %d
	TCPFlags      = syn
	Start_Command = echo %%IP%% >> %s
`, latencyPort, fifoPath, floodSequence[0], floodSequence[1], floodSequence[2], o.seqTimeout, e.opened)
	e.base = conf
	if err := os.WriteFile(e.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(e.conf2, []byte(conf+fmt.Sprintf(stormConfig, stormDoor, stormPort)), 0o644); err != nil {
		return nil, err
	}
	// The storm's knockers, one address each.
	for i := range o.stormKnocks {
		if _, err := l.client.TryIP("addr", "add", stormKnocker(i).String()+"/32", "dev", l.veth.A.Dev); err != nil {
			return nil, err
		}
	}
	var err error
	if e.fifo, err = openFIFO(fifoPath); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) Close() error { return e.fifo.Close() }

// result holds one daemon's figures.
type result struct {
	name string

	// Idle.
	idle        time.Duration
	idleCPU     time.Duration
	idleWakeups uint64
	threads     int

	// Latency, sorted.
	lat       []time.Duration
	latSent   int
	latMissed int

	// Flood.
	gen       floodResult
	rx        linkStats // received by the server's veth during the flood
	sock      sockStats // the daemon's packet sockets during the flood
	cpu       time.Duration
	quiet     bool          // the daemon went quiet within the drain limit
	drainTime time.Duration // from the flood's end until quiet
	rss       uint64
	// floodSwitches counts the context switches of the daemon's threads
	// from the flood's start until quiet.
	floodSwitches uint64
	opened        int // legitimate sequences that ran the start command
	logLines      int // lines the daemon logged from the flood's start to the end of the expiry window
	// CPU spent after going quiet, until Seq_Timeout + 3 s after the
	// flood's start: what the flood's attempts cost as they expire.
	expiryCPU    time.Duration
	expiryWindow time.Duration
	perfData     string

	// The second run's phases; nil when skipped.
	survival *survivalResult
	storm    *stormResult
}

// daemon is a daemon started for a run and seen to work.
type daemon struct {
	*proc
	logPath string
	outPath string
	knocker *udpKnocker // knocks on the latency door from clientAddr
}

// startDaemon starts name's bin on conf, with the files of the run called
// tag, and waits until a knock opens the latency door. watch, when not
// nil, gets the daemon's standard output; extra are more flags.
func (e *env) startDaemon(ctx context.Context, o options, name, bin, conf, tag string, watch io.Writer, extra ...string) (_ *daemon, err error) {
	return e.startDaemonWith(ctx, o, name, bin, conf, tag, watch, nil, nil, extra...)
}

// startDaemonWith is startDaemon with more environment variables for the
// daemon and a command it runs under (wrap: valgrind and its flags).
func (e *env) startDaemonWith(ctx context.Context, o options, name, bin, conf, tag string, watch io.Writer, environ, wrap []string, extra ...string) (_ *daemon, err error) {
	l := e.lab
	d := &daemon{logPath: filepath.Join(e.dir, tag+".log"), outPath: filepath.Join(e.dir, tag+".out")}
	args := append([]string{"-c", conf, "-i", l.veth.B.Dev, "-g", d.logPath}, extra...)
	if name != "knockd" {
		args = append(args, "--backend", "raw", "--state-dir", filepath.Join(e.dir, "state-"+tag))
	}
	logf("%s: starting %s %s", name, strings.Join(append(wrap, bin), " "), strings.Join(args, " "))
	daemonCPU := -1
	if o.pin {
		daemonCPU = 1
	}
	if d.proc, err = startProc(l.server, name, d.outPath, watch, daemonCPU, environ, wrap, bin, args...); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	if d.knocker, err = dialUDP(l.client, netip.AddrPortFrom(clientAddr, 0), netip.AddrPortFrom(serverAddr, latencyPort)); err != nil {
		return nil, err
	}

	// Ready when a knock opens the latency door. Lines of the daemon
	// before, whose start-up probe may have opened the door more than
	// once (slowly, under valgrind), would tell of a start that has not
	// happened: they go first.
	e.fifo.drain()
	ready := false
	wait := 20 * time.Second
	if len(wrap) > 0 {
		wait = 120 * time.Second // valgrind starts slowly
	}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && !ready; {
		if d.exited() {
			return nil, d.fail(fmt.Errorf("exited during start-up: %v", d.err))
		}
		if _, err := d.knocker.knock(); err != nil {
			return nil, err
		}
		_, ready = e.fifo.wait(ctx, 250*time.Millisecond)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if !ready {
		return nil, d.fail(fmt.Errorf("no opening of the latency door within %v of the start", wait))
	}
	return d, nil
}

// stop stops the daemon and closes its knocker.
func (d *daemon) stop() {
	d.proc.stop()
	if d.knocker != nil {
		d.knocker.Close()
	}
}

// fail adds the end of the daemon's output to err.
func (d *daemon) fail(err error) error {
	out, _ := os.ReadFile(d.outPath)
	if len(out) > 2000 {
		out = out[len(out)-2000:]
	}
	return fmt.Errorf("%w\n%s output:\n%s", err, d.name, out)
}

// measure runs one daemon through the idle, latency and flood phases,
// then starts it again for the storm and survival phases.
func measure(ctx context.Context, o options, e *env, name, bin string) (*result, error) {
	res := &result{name: name}
	d, err := e.startDaemon(ctx, o, name, bin, e.conf, name, nil)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	p, k, logPath := d.proc, d.knocker, d.logPath
	fail := func(err error) (*result, error) { return nil, d.fail(err) }
	logf("%s: running (pid %d); idle for %v", name, p.pid, o.idle)

	// Idle: after the start-up and the probe have settled.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	s0, err := readThreadStats(p.pid)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := sleep(ctx, o.idle); err != nil {
		return nil, err
	}
	s1, err := readThreadStats(p.pid)
	if err != nil {
		return fail(err)
	}
	res.idle = time.Since(t0)
	res.threads = s1.threads
	if s1.run >= s0.run {
		res.idleCPU = s1.run - s0.run
	}
	if s1.switches >= s0.switches {
		res.idleWakeups = s1.switches - s0.switches
	}

	// Latency.
	logf("%s: timing %d openings", name, o.latency)
	e.fifo.drain()
	for range o.latency {
		if p.exited() {
			return fail(fmt.Errorf("exited during the latency phase: %v", p.err))
		}
		e.fifo.drain()
		sent, err := k.knock()
		if err != nil {
			return nil, err
		}
		res.latSent++
		if at, ok := e.fifo.wait(ctx, 2*time.Second); ok {
			res.lat = append(res.lat, at.Sub(sent))
		} else {
			res.latMissed++
		}
		if err := sleep(ctx, o.latencyGap); err != nil {
			return nil, err
		}
	}
	slices.Sort(res.lat)

	// Flood.
	if err := flood(ctx, o, e, p, logPath, res); err != nil {
		return fail(err)
	}
	d.stop()
	logf("%s: stopped", name)

	if err := secondRun(ctx, o, e, name, bin, res); err != nil {
		return nil, err
	}
	return res, nil
}

func flood(ctx context.Context, o options, e *env, p *proc, logPath string, res *result) error {
	return floodWith(ctx, o, e, p, logPath, res, uint64(time.Now().UnixNano()))
}

// floodWith is flood with the generator's seed. Under -compare it does
// not watch the flood's attempts expire.
func floodWith(ctx context.Context, o options, e *env, p *proc, logPath string, res *result, seed uint64) error {
	l := e.lab
	if err := os.WriteFile(e.opened, nil, 0o644); err != nil {
		return err
	}
	tx, err := openTx(l.client, l.veth.A.Dev)
	if err != nil {
		return err
	}
	defer tx.Close()
	plan := newPlan(o, l)
	plan.seed, plan.rate = seed, o.floodRate
	logBefore := countLines(logPath)
	if _, err := readSockStats(p.pid); err != nil { // zeroes the counters
		return err
	}
	rx0, err := l.rxStats()
	if err != nil {
		return err
	}
	cpu0, err := cpuTime(p.pid)
	if err != nil {
		return err
	}
	ts0, err := readThreadStats(p.pid)
	if err != nil {
		return err
	}
	var perf *exec.Cmd
	if o.perfDir != "" {
		res.perfData = filepath.Join(o.perfDir, res.name+"-flood.perf.data")
		perf = exec.Command("perf", "record", "-a", "-g", "-F", "1999", "-o", res.perfData)
		perf.Stdout, perf.Stderr = os.Stderr, os.Stderr
		if err := perf.Start(); err != nil {
			return fmt.Errorf("perf record: %w", err)
		}
		defer func() {
			if perf != nil {
				perf.Process.Signal(syscall.SIGINT)
				perf.Wait()
			}
		}()
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}

	logf("%s: flooding: %d spoofed SYNs to port %d, %d legitimate sequences among them", res.name, plan.spoofed, plan.port, plan.legit)
	var sent atomic.Int64
	res.gen, err = tx.flood(ctx, plan, &sent)
	if err != nil {
		return err
	}
	end := time.Now()
	logf("%s: sent %d frames in %v (%.0f packets/s); waiting for the daemon to go quiet",
		res.name, res.gen.sent, res.gen.took.Round(time.Millisecond), float64(res.gen.sent)/res.gen.took.Seconds())

	cpuNow, err := waitQuiet(ctx, p, end, o.drain, &res.quiet, &res.drainTime)
	if err != nil {
		return err
	}
	res.cpu = cpuNow - cpu0
	if ts1, err := readThreadStats(p.pid); err == nil && ts1.switches >= ts0.switches {
		res.floodSwitches = ts1.switches - ts0.switches
	}
	if res.sock, err = readSockStats(p.pid); err != nil {
		return err
	}
	rx1, err := l.rxStats()
	if err != nil {
		return err
	}
	res.rx = linkStats{rx1.packets - rx0.packets, rx1.dropped - rx0.dropped}
	if res.rss, err = peakRSS(p.pid); err != nil {
		return err
	}
	res.opened = countLinesEqual(e.opened, clientAddr.String())
	if perf != nil {
		perf.Process.Signal(syscall.SIGINT)
		perf.Wait()
		perf = nil
		logf("%s: perf report -i %s", res.name, res.perfData)
	}

	if len(o.compare) > 0 {
		res.logLines = countLines(logPath) - logBefore
		return nil
	}

	// Expiry: the flood's attempts time out Seq_Timeout after they began.
	quietAt := time.Now()
	until := res.gen.start.Add(time.Duration(o.seqTimeout)*time.Second + 3*time.Second)
	if d := time.Until(until); d > 0 {
		logf("%s: watching the flood's attempts expire for %v", res.name, d.Round(time.Second))
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
	cpu2, err := cpuTime(p.pid)
	if err != nil {
		return err
	}
	res.expiryCPU, res.expiryWindow = cpu2-cpuNow, time.Since(quietAt)
	res.logLines = countLines(logPath) - logBefore
	return nil
}

// waitQuiet waits until p has spent less than 20 ms of CPU over the last
// second, or until drain has passed since end, and returns p's CPU time
// then. It sets quiet, and how long after end p went quiet.
func waitQuiet(ctx context.Context, p *proc, end time.Time, drain time.Duration, quiet *bool, took *time.Duration) (time.Duration, error) {
	const step, window = 250 * time.Millisecond, 4
	var samples []time.Duration
	for {
		if err := sleep(ctx, step); err != nil {
			return 0, err
		}
		if p.exited() {
			return 0, fmt.Errorf("exited during the flood: %v", p.err)
		}
		cpuNow, err := cpuTime(p.pid)
		if err != nil {
			return 0, err
		}
		samples = append(samples, cpuNow)
		if n := len(samples); n > window && samples[n-1]-samples[n-1-window] < 20*time.Millisecond {
			*quiet = true
			*took = max(0, time.Since(end)-window*step)
			return cpuNow, nil
		}
		if time.Since(end) > drain {
			*quiet = false
			*took = time.Since(end)
			return cpuNow, nil
		}
	}
}

// newPlan returns the flood that o asks for.
func newPlan(o options, l *lab) floodPlan {
	p := floodPlan{
		dstMAC:   l.serverMAC,
		src:      clientAddr,
		dst:      serverAddr,
		port:     floodPort,
		spoofed:  o.floodPackets,
		legit:    o.legit,
		sequence: floodSequence,
		gap:      o.knockGap,
		seed:     uint64(time.Now().UnixNano()),
		cpu:      -1,
	}
	if o.pin {
		p.cpu = 0
	}
	return p
}

// shellFloor times what every opening costs whatever the daemon: a Go
// program (this one) starting the latency door's start command, /bin/sh
// -c echo into the FIFO, and the line's arrival. n runs, sorted.
func shellFloor(ctx context.Context, e *env, n int, gap time.Duration) ([]time.Duration, error) {
	var d []time.Duration
	for range n {
		e.fifo.drain()
		t := time.Now()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "echo floor > "+e.fifo.f.Name())
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		at, ok := e.fifo.wait(ctx, 2*time.Second)
		if err := cmd.Wait(); err != nil {
			return nil, err
		}
		if !ok {
			return nil, errors.New("the shell's line never came")
		}
		d = append(d, at.Sub(t))
		if err := sleep(ctx, gap); err != nil {
			return nil, err
		}
	}
	slices.Sort(d)
	return d, nil
}

// baseline floods the server with no daemon running: the generator's top
// rate on this machine.
func baseline(ctx context.Context, l *lab, p floodPlan) (floodResult, error) {
	tx, err := openTx(l.client, l.veth.A.Dev)
	if err != nil {
		return floodResult{}, err
	}
	defer tx.Close()
	var sent atomic.Int64
	return tx.flood(ctx, p, &sent)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte{'\n'})
}

func countLinesEqual(path, s string) int {
	b, _ := os.ReadFile(path)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == s {
			n++
		}
	}
	return n
}

//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The second run of each daemon: the survival of a real knocker in a
// flood of first knocks, then a storm of openings on one door while
// another door is knocked on. It runs with -v, whose lines say when each
// OPEN SESAME happened, on a configuration that adds the stormed door.

const (
	stormDoor = "storm"
	stormPort = 6000
)

// stormConfig is the second run's addition to the configuration.
const stormConfig = `
[%s]
	Sequence      = %d:udp
	Seq_Timeout   = 5
	Start_Command = sleep 1
`

// stormKnocker is the address of the i-th knock on the latency door
// during the storm: one address per knock, so that each knock's command
// is told apart by its %IP% even when it runs late.
func stormKnocker(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)})
}

// survivor is the address of the i-th knocker of the survival flood;
// survivalControl knocks before the flood begins.
func survivor(i int) netip.Addr {
	b := clientAddr6.As16()
	b[14], b[15] = 1+byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

var survivalControl = netip.MustParseAddr("2001:db8::ff")

// survivalResult is what the survival flood showed.
type survivalResult struct {
	gen       floodResult
	sock      sockStats
	quiet     bool
	drainTime time.Duration
	rss       uint64
	control   bool  // the knocker before the flood opened the door
	gaps      []int // the pauses tried, in spoofed frames, ascending
	knockers  int   // per pause
	opened    []int // per pause, the knockers that opened the door
}

// longest returns the longest pause at which every knocker opened the
// door, and at every shorter pause too; false if none.
func (s *survivalResult) longest() (int, bool) {
	best, ok := 0, false
	for i, g := range s.gaps {
		if s.opened[i] != s.knockers {
			break
		}
		best, ok = g, true
	}
	return best, ok
}

// rate is the flood's rate, in frames a second.
func (s *survivalResult) rate() float64 { return float64(s.gen.sent) / s.gen.took.Seconds() }

// stormResult is what the storm showed.
type stormResult struct {
	gen    floodResult
	knocks int // knocks on the latency door during the storm
	wait   time.Duration
	// Of the knocks whose command ran within wait of the storm's end:
	// from the OPEN SESAME line to the command, from the knock's send to
	// the command, sorted.
	sesameToCmd []time.Duration
	sentToCmd   []time.Duration
	ran         int
	sesames     int // knocks whose OPEN SESAME was seen
	// The stormed door's OPEN SESAME and running command lines, from the
	// storm's start to the end of the wait.
	stormOpen, stormCmd int
}

// secondRun starts the daemon again for the survival and storm phases.
func secondRun(ctx context.Context, o options, e *env, name, bin string, res *result) error {
	if len(o.surviveGaps) == 0 && o.storm == 0 {
		return nil
	}
	w := newLineWatcher(stormDoor)
	d, err := e.startDaemon(ctx, o, name, bin, e.conf2, name+"-2", w, "-v")
	if err != nil {
		return err
	}
	defer d.stop()
	if len(o.surviveGaps) > 0 {
		if res.survival, err = survive(ctx, o, e, d); err != nil {
			return d.fail(err)
		}
	}
	if o.storm > 0 {
		if res.storm, err = storm(ctx, o, e, d, w); err != nil {
			return d.fail(err)
		}
	}
	d.stop()
	logf("%s: stopped", name)
	return nil
}

// survivalPlan returns the survival flood: IPv6 SYNs to the flooded
// door's first port from sources used once each, warm-up of them first,
// then for each pause, knockers that knock the door's sequence with that
// many spoofed frames between two knocks. The control knocker knocks at
// the flood's very start.
func survivalPlan(o options, l *lab) floodPlan {
	p := newPlan(o, l)
	p.src, p.dst = clientAddr6, serverAddr6
	p.legit = 0
	p.knocks = map[int]knock{}
	add := func(i int, k knock) {
		for p.knocks[i].port != 0 {
			i++
		}
		p.knocks[i] = k
	}
	for i, port := range floodSequence {
		add(i, knock{survivalControl, port})
	}
	j := 0
	for _, gap := range o.surviveGaps {
		for range o.surviveKnockers {
			src, at := survivor(j), o.surviveWarmup+3*j
			for _, port := range floodSequence {
				add(at, knock{src, port})
				at += gap
			}
			j++
		}
	}
	last := 0
	for i := range p.knocks {
		last = max(last, i)
	}
	p.spoofed = last + 1000 - len(p.knocks)
	return p
}

func survive(ctx context.Context, o options, e *env, d *daemon) (*survivalResult, error) {
	l := e.lab
	if err := os.WriteFile(e.opened, nil, 0o644); err != nil {
		return nil, err
	}
	tx, err := openTx(l.client, l.veth.A.Dev)
	if err != nil {
		return nil, err
	}
	defer tx.Close()
	plan := survivalPlan(o, l)
	if _, err := readSockStats(d.pid); err != nil { // zeroes the counters
		return nil, err
	}
	logf("%s: survival: %d IPv6 SYNs to port %d from unique spoofed sources; knockers pausing %v frames between knocks, %d each, from frame %d",
		d.name, plan.spoofed, plan.port, o.surviveGaps, o.surviveKnockers, o.surviveWarmup)
	s := &survivalResult{gaps: o.surviveGaps, knockers: o.surviveKnockers}
	var sent atomic.Int64
	if s.gen, err = tx.flood(ctx, plan, &sent); err != nil {
		return nil, err
	}
	end := time.Now()
	logf("%s: sent %d frames in %v (%.0f packets/s); waiting for the daemon to go quiet",
		d.name, s.gen.sent, s.gen.took.Round(time.Millisecond), s.rate())
	if _, err := waitQuiet(ctx, d.proc, end, o.drain, &s.quiet, &s.drainTime); err != nil {
		return nil, err
	}
	if s.sock, err = readSockStats(d.pid); err != nil {
		return nil, err
	}
	if s.rss, err = peakRSS(d.pid); err != nil {
		return nil, err
	}
	s.control = countLinesEqual(e.opened, survivalControl.String()) > 0
	j := 0
	for range o.surviveGaps {
		n := 0
		for range o.surviveKnockers {
			if countLinesEqual(e.opened, survivor(j).String()) > 0 {
				n++
			}
			j++
		}
		s.opened = append(s.opened, n)
	}
	logf("%s: survival: opened %v of %d per pause, control %v", d.name, s.opened, s.knockers, s.control)

	// The storm starts once the flood's attempts have expired, and
	// knockd has seen that they have: it ends attempts only when a
	// packet comes, the latency knock below.
	until := s.gen.start.Add(s.gen.took + time.Duration(o.seqTimeout)*time.Second + time.Second)
	if dl := time.Until(until); dl > 0 {
		logf("%s: waiting %v for the flood's attempts to expire", d.name, dl.Round(time.Second))
		if err := sleep(ctx, dl); err != nil {
			return nil, err
		}
	}
	e.fifo.drain()
	if _, err := d.knocker.knock(); err != nil {
		return nil, err
	}
	if _, ok := e.fifo.wait(ctx, o.drain); !ok {
		return nil, fmt.Errorf("the latency door did not open within %v after the survival flood", o.drain)
	}
	var quiet bool
	var took time.Duration
	if _, err := waitQuiet(ctx, d.proc, time.Now(), o.drain, &quiet, &took); err != nil {
		return nil, err
	}
	return s, nil
}

func storm(ctx context.Context, o options, e *env, d *daemon, w *lineWatcher) (*stormResult, error) {
	l := e.lab
	s := &stormResult{knocks: o.stormKnocks, wait: o.stormWait}
	knockers := make([]*udpKnocker, o.stormKnocks)
	for i := range knockers {
		k, err := dialUDP(l.client, netip.AddrPortFrom(stormKnocker(i), 0), netip.AddrPortFrom(serverAddr, latencyPort))
		if err != nil {
			return nil, err
		}
		defer k.Close()
		knockers[i] = k
	}
	tx, err := openTx(l.client, l.veth.A.Dev)
	if err != nil {
		return nil, err
	}
	defer tx.Close()
	plan := newPlan(o, l)
	plan.port, plan.udp, plan.legit, plan.spoofed, plan.rate = stormPort, true, 0, o.storm, o.stormRate
	open0, cmd0 := w.counts(stormDoor)
	e.fifo.drain()
	logf("%s: storm: %d spoofed UDP datagrams to port %d (Start_Command sleep 1) at %d/s; %d knocks on the latency door meanwhile",
		d.name, o.storm, stormPort, o.stormRate, o.stormKnocks)

	type genDone struct {
		res floodResult
		err error
	}
	done := make(chan genDone, 1)
	start := time.Now()
	go func() {
		var sent atomic.Int64
		r, err := tx.flood(ctx, plan, &sent)
		done <- genDone{r, err}
	}()
	length := time.Duration(float64(o.storm) / float64(o.stormRate) * float64(time.Second))
	sent := make([]time.Time, o.stormKnocks)
	for i, k := range knockers {
		if err := sleep(ctx, time.Until(start.Add(length*time.Duration(i+1)/time.Duration(o.stormKnocks+1)))); err != nil {
			return nil, err
		}
		if sent[i], err = k.knock(); err != nil {
			return nil, err
		}
	}
	g := <-done
	if g.err != nil {
		return nil, g.err
	}
	s.gen = g.res
	logf("%s: storm sent in %v; waiting up to %v for the latency door's commands", d.name, s.gen.took.Round(time.Millisecond), o.stormWait)

	ran := map[string]time.Time{}
	for deadline := time.Now().Add(o.stormWait); len(ran) < o.stormKnocks; {
		line, ok := e.fifo.next(ctx, time.Until(deadline))
		if !ok {
			break
		}
		if _, seen := ran[line.text]; !seen {
			ran[line.text] = line.at
		}
	}
	for i := range knockers {
		src := stormKnocker(i).String()
		sesame, opened := w.openedAt(src, "latency")
		if opened {
			s.sesames++
		}
		cmd, ok := ran[src]
		if !ok {
			continue
		}
		s.ran++
		s.sentToCmd = append(s.sentToCmd, cmd.Sub(sent[i]))
		if opened {
			s.sesameToCmd = append(s.sesameToCmd, cmd.Sub(sesame))
		}
	}
	slices.Sort(s.sentToCmd)
	slices.Sort(s.sesameToCmd)
	open1, cmd1 := w.counts(stormDoor)
	s.stormOpen, s.stormCmd = open1-open0, cmd1-cmd0
	logf("%s: storm: %d of %d commands of the latency door ran; stormed door: %d OPEN SESAME, %d commands started",
		d.name, s.ran, s.knocks, s.stormOpen, s.stormCmd)
	return s, nil
}

// parseCounts parses a comma-separated list of positive counts, in
// ascending order.
func parseCounts(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("%d does not follow %d: the counts must be in ascending order", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	return out, nil
}

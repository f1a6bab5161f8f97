//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsAddr is where ours serves /metrics in the metrics phase, inside
// the server's namespace.
const metricsAddr = "127.0.0.1:9560"

// metricsResult is the metrics phase: the same flood on ours, with
// metrics off and with metrics on and scraped every second, in rounds
// that alternate the order.
type metricsResult struct {
	off, on         []*result
	scrapes, failed int
	// scrapeCPU is the daemon's CPU per scrape, measured on the first
	// daemon with metrics on, idle, before its flood.
	scrapeCPU time.Duration
}

// idleScrapes is how many scrapes measure scrapeCPU.
const idleScrapes = 20

// metricsCost runs the metrics phase on ours.
func metricsCost(ctx context.Context, o options, e *env, bin string) (*metricsResult, error) {
	mr := &metricsResult{}
	for round := range o.metricsRounds {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, on := range order {
			tag := fmt.Sprintf("ours-m%d-off", round)
			var extra []string
			if on {
				tag = fmt.Sprintf("ours-m%d-on", round)
				extra = []string{"--metrics", metricsAddr}
			}
			d, err := e.startDaemon(ctx, o, "ours", bin, e.conf, tag, nil, extra...)
			if err != nil {
				return nil, err
			}
			res := &result{name: tag}
			var wg sync.WaitGroup
			sctx, stop := context.WithCancel(ctx)
			if on {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, failed := scrapeEverySecond(sctx, e)
					mr.scrapes += n
					mr.failed += failed
				}()
			}
			logf("metrics phase, round %d: flooding ours with metrics %s", round+1, map[bool]string{false: "off", true: "on, scraped every second"}[on])
			var before packetCounts
			if on && mr.scrapeCPU == 0 {
				mr.scrapeCPU, err = scrapeCost(ctx, e, d.proc.pid)
			}
			if on && err == nil {
				before, err = scrapeCounts(ctx, e)
			}
			if err == nil {
				err = flood(ctx, o, e, d.proc, d.logPath, res)
			}
			if err == nil && on {
				// The daemon reads PACKET_STATISTICS at each scrape,
				// and a read resets them: what the bench read is only
				// what the scrapes left. The daemon's own series count
				// it all.
				var after packetCounts
				if after, err = scrapeCounts(ctx, e); err == nil {
					res.sock.drops = after.dropped - before.dropped
					res.sock.packets = after.received - before.received + res.sock.drops
				}
			}
			stop()
			wg.Wait()
			d.stop()
			if err != nil {
				return nil, d.fail(err)
			}
			if on {
				mr.on = append(mr.on, res)
			} else {
				mr.off = append(mr.off, res)
			}
		}
	}
	return mr, nil
}

// packetCounts are knockd_packets_total and knockd_packets_dropped_total.
type packetCounts struct{ received, dropped uint64 }

// scrapeCounts reads the daemon's packet counters from /metrics, parsed
// with Prometheus's text parser.
func scrapeCounts(ctx context.Context, e *env) (packetCounts, error) {
	tr := nsTransport(e)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return packetCounts{}, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return packetCounts{}, fmt.Errorf("parsing /metrics: %w", err)
	}
	get := func(name string) (uint64, error) {
		f := fams[name]
		if f == nil || len(f.Metric) != 1 || f.Metric[0].Counter == nil {
			return 0, fmt.Errorf("/metrics has no single counter %s", name)
		}
		return uint64(f.Metric[0].Counter.GetValue()), nil
	}
	var c packetCounts
	if c.received, err = get("knockd_packets_total"); err != nil {
		return c, err
	}
	c.dropped, err = get("knockd_packets_dropped_total")
	return c, err
}

// scrapeCost scrapes the idle daemon idleScrapes times in a row and
// returns its CPU per scrape.
func scrapeCost(ctx context.Context, e *env, pid int) (time.Duration, error) {
	if err := sleep(ctx, time.Second); err != nil {
		return 0, err
	}
	s0, err := readThreadStats(pid)
	if err != nil {
		return 0, err
	}
	for range idleScrapes {
		if _, err := scrapeCounts(ctx, e); err != nil {
			return 0, err
		}
	}
	s1, err := readThreadStats(pid)
	if err != nil {
		return 0, err
	}
	logf("metrics phase: %v of the daemon's CPU per scrape", (s1.run-s0.run)/idleScrapes)
	return (s1.run - s0.run) / idleScrapes, nil
}

// nsTransport dials from inside the server's namespace.
func nsTransport(e *env) *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := e.lab.server.Do(func() (err error) {
			c, err = net.DialTimeout(network, addr, 2*time.Second)
			return err
		})
		return c, err
	}}
}

// scrapeEverySecond reads /metrics once a second, from inside the
// server's namespace, until ctx ends; it returns the scrapes made and
// those that failed.
func scrapeEverySecond(ctx context.Context, e *env) (n, failed int) {
	tr := nsTransport(e)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		resp, err := client.Get("http://" + metricsAddr + "/metrics")
		n++
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s", resp.Status)
			}
		}
		if err != nil {
			failed++
		}
		select {
		case <-ctx.Done():
			return n, failed
		case <-t.C:
		}
	}
}

// sums adds up the floods' figures: packets processed, CPU, frames sent.
func sums(rs []*result) (processed uint64, cpu time.Duration, sent int, opened, legit int) {
	for _, x := range rs {
		processed += x.processed()
		cpu += x.cpu
		sent += x.gen.sent
		opened += x.opened
		legit += x.gen.legitSent
	}
	return
}

// metricsRows adds the metrics phase's rows: the flood with metrics off
// and on, and their ratio.
func (r *report) metricsRows(add func(measure, knockd, ours, ratio, target, met string)) {
	m := r.metrics
	if m == nil || len(m.off) == 0 || len(m.on) == 0 {
		return
	}
	pOff, cOff, sOff, oOff, lOff := sums(m.off)
	pOn, cOn, sOn, oOn, lOn := sums(m.on)
	desc := func(p uint64, c time.Duration, s, opened, legit int) string {
		return fmt.Sprintf("%s of %s processed (%s), %.3f s CPU per million processed, %d/%d legitimate opened",
			num(int(p)), num(s), pct(p, uint64(s)), c.Seconds()/(float64(p)/1e6), opened, legit)
	}
	add(fmt.Sprintf("Metrics: flood with metrics off, %d round(s)", len(m.off)), "", desc(pOff, cOff, sOff, oOff, lOff), "", "", "")
	add(fmt.Sprintf("Metrics: flood with --metrics on, /metrics scraped every second (%d scrapes, %d failed)", m.scrapes, m.failed), "",
		desc(pOn, cOn, sOn, oOn, lOn), "", "", "")
	if pOff == 0 || pOn == 0 || sOff == 0 || sOn == 0 {
		return
	}
	procRatio := (float64(pOn) / float64(sOn)) / (float64(pOff) / float64(sOff))
	cpuRatio := (cOn.Seconds() / float64(pOn)) / (cOff.Seconds() / float64(pOff))
	if m.scrapeCPU > 0 {
		var cpu, took time.Duration
		for _, x := range m.on {
			cpu += x.cpu
			took += x.gen.took + x.drainTime
		}
		share := m.scrapeCPU.Seconds() / (cpu.Seconds() / took.Seconds())
		add(fmt.Sprintf("Metrics: daemon CPU per scrape (idle, %d scrapes), and one scrape a second as a share of the daemon's CPU per second under the flood", idleScrapes), "",
			fmt.Sprintf("%.2f ms; %.2f%%", float64(m.scrapeCPU)/float64(time.Millisecond), 100*share), "", "< 5%", yesNo(share < 0.05, fmt.Sprintf("%.1f%%", 100*share)))
	}
	add("Metrics: on/off, share of sent processed", "", fmt.Sprintf("%.3f", procRatio), "", "≥ 0.95",
		yesNo(procRatio >= 0.95, fmt.Sprintf("%.3f", procRatio)))
	add("Metrics: on/off, CPU per packet processed", "", fmt.Sprintf("%.3f", cpuRatio), "", "≤ 1.05",
		yesNo(cpuRatio <= 1.05 && m.failed == 0, fmt.Sprintf("%.3f, %d scrapes failed", cpuRatio, m.failed)))
}

//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// report is a run's figures and prints them.
type report struct {
	opts         options
	started      time.Time
	took         time.Duration
	knockd, ours *result
	baseline     floodResult // the generator alone, no daemon running
	baseline6    floodResult // the same with IPv6 frames, as the survival flood sends
	// shell is the latency door's start command started by the bench
	// itself, sorted: the part of an opening's latency no daemon can
	// avoid.
	shell   []time.Duration
	matcher []benchLine
	ksets   []*ksetResult  // the kernel-set phase's variants; nil if not run
	metrics *metricsResult // nil when skipped
}

// row is one line of the table. Empty cells print as "—".
type row struct {
	measure, knockd, ours, ratio, target, met string
}

func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "## knockd 0.8 (Debian) and ours (--backend raw), side by side\n\n")
	fmt.Fprintf(w, "%s, %s, %d CPUs, Linux %s; %s, run took %v.\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), kernel(),
		runtime.Version(), r.took.Round(time.Second))
	fmt.Fprintf(w, "Command: `go run ./cmd/knock-bench %s`\n", strings.Join(os.Args[1:], " "))
	if b := r.baseline; b.took > 0 {
		fmt.Fprintf(w, "Generator alone (no daemon running): %s frames in %.2f s, %s/s", num(b.sent), b.took.Seconds(), num(int(float64(b.sent)/b.took.Seconds())))
	}
	if b := r.baseline6; b.took > 0 {
		fmt.Fprintf(w, "; IPv6 SYNs (the survival flood's): %s in %.2f s, %s/s", num(b.sent), b.took.Seconds(), num(int(float64(b.sent)/b.took.Seconds())))
	}
	if o.pin {
		fmt.Fprintf(w, "; generator pinned to CPU 0, daemons to CPU 1")
	}
	fmt.Fprintf(w, ".\n\n")

	var rows []row
	add := func(measure string, k, u string, ratio, target, met string) {
		rows = append(rows, row{measure, k, u, ratio, target, met})
	}
	both := func(f func(*result) string) (string, string) {
		return cell(r.knockd, f), cell(r.ours, f)
	}
	ratioOf := func(f func(*result) (float64, bool)) string {
		if r.knockd == nil || r.ours == nil {
			return ""
		}
		k, ok1 := f(r.knockd)
		u, ok2 := f(r.ours)
		if !ok1 || !ok2 || k == 0 {
			return ""
		}
		return fmt.Sprintf("%.3g×", u/k)
	}

	// Flood.
	k, u := both(func(x *result) string {
		return fmt.Sprintf("%s in %.2f s (%s/s)", num(x.gen.sent), x.gen.took.Seconds(), num(int(float64(x.gen.sent)/x.gen.took.Seconds())))
	})
	add(fmt.Sprintf("Flood: frames sent (%s spoofed SYNs + %d×%d legitimate knocks), rate", num(o.floodPackets), o.legit, len(floodSequence)), k, u, "", "", "")
	k, u = both(func(x *result) string {
		return fmt.Sprintf("%s (%s dropped)", num(int(x.rx.packets)), num(int(x.rx.dropped)))
	})
	add("Flood: received by the server's veth", k, u, "", "", "")
	k, u = both(func(x *result) string { return fmt.Sprintf("%s (%d sockets)", num(int(x.sock.packets)), x.sock.socks) })
	add("Flood: accepted by the daemon's BPF filter", k, u, "", "", "")
	k, u = both(func(x *result) string {
		return fmt.Sprintf("%s (%s)", num(int(x.sock.drops)), pct(x.sock.drops, x.sock.packets))
	})
	met := ""
	if r.ours != nil {
		met = yesNo(r.ours.sock.drops == 0, fmt.Sprintf("%s dropped", num(int(r.ours.sock.drops))))
	}
	add("Flood: dropped by the kernel, socket queue or ring full", k, u, "", "0", met)
	k, u = both(func(x *result) string {
		return fmt.Sprintf("%s (%s of sent)", num(int(x.processed())), pct(x.processed(), uint64(x.gen.sent)))
	})
	add("Flood: processed (delivered to the daemon)", k, u, ratioOf(func(x *result) (float64, bool) { return float64(x.processed()), true }), "", "")
	k, u = both(func(x *result) string {
		s := fmt.Sprintf("%.2f", x.cpu.Seconds())
		if !x.quiet {
			s += " (still busy)"
		}
		return s
	})
	add("Flood: daemon CPU, s (start of flood until quiet)", k, u, ratioOf(func(x *result) (float64, bool) { return x.cpu.Seconds(), true }), "", "")
	perM := func(x *result) (float64, bool) { return x.cpu.Seconds() / (float64(x.gen.sent) / 1e6), x.gen.sent > 0 }
	k, u = both(func(x *result) string { v, _ := perM(x); return fmt.Sprintf("%.3f", v) })
	met = ""
	if r.knockd != nil && r.ours != nil {
		kv, _ := perM(r.knockd)
		uv, _ := perM(r.ours)
		met = yesNo(uv <= kv/10, fmt.Sprintf("%.2f× the target", uv/(kv/10)))
	}
	add("Flood: CPU per million packets sent, s", k, u, ratioOf(perM), "≤ 0.1× knockd", met)
	k, u = both(func(x *result) string {
		if x.processed() == 0 {
			return ""
		}
		return fmt.Sprintf("%.3f", x.cpu.Seconds()/(float64(x.processed())/1e6))
	})
	add("Flood: CPU per million packets processed, s", k, u, ratioOf(func(x *result) (float64, bool) {
		return x.cpu.Seconds() / (float64(x.processed()) / 1e6), x.processed() > 0
	}), "", "")
	k, u = both(func(x *result) string { return num(int(x.floodSwitches)) })
	add("Flood: context switches of the daemon's threads", k, u, ratioOf(func(x *result) (float64, bool) { return float64(x.floodSwitches), true }), "", "")
	k, u = both(func(x *result) string {
		s := fmt.Sprintf("%.2f", x.drainTime.Seconds())
		if !x.quiet {
			s = "> " + s + " (not quiet)"
		}
		return s
	})
	add("Flood: busy after the last packet, s", k, u, "", "", "")
	k, u = both(func(x *result) string { return fmt.Sprintf("%.1f", float64(x.rss)/(1<<20)) })
	add("Flood: peak RSS (VmHWM), MiB", k, u, ratioOf(func(x *result) (float64, bool) { return float64(x.rss), true }), "", "")
	k, u = both(func(x *result) string {
		return fmt.Sprintf("%d/%d (%s)", x.opened, x.gen.legitSent, pct(uint64(x.opened), uint64(x.gen.legitSent)))
	})
	met = ""
	if r.ours != nil && r.ours.gen.legitSent > 0 {
		got := float64(r.ours.opened) / float64(r.ours.gen.legitSent)
		met = yesNo(got >= 0.99, fmt.Sprintf("%.0f%%", 100*got))
	}
	add("Flood: legitimate sequences that opened the door", k, u, "", "≥ 99%", met)
	k, u = both(func(x *result) string { return num(x.logLines) })
	add(fmt.Sprintf("Flood: log lines, flood start to Seq_Timeout (%d s) + 3 s", o.seqTimeout), k, u, ratioOf(func(x *result) (float64, bool) { return float64(x.logLines), true }), "", "")
	k, u = both(func(x *result) string {
		return fmt.Sprintf("%.2f over %.0f s", x.expiryCPU.Seconds(), x.expiryWindow.Seconds())
	})
	add("Flood: CPU after quiet while the flood's attempts expire, s", k, u, "", "", "")

	// Latency.
	k, u = both(func(x *result) string { return fmt.Sprintf("%d/%d", len(x.lat), x.latSent) })
	add("Latency: openings seen/sent (one UDP knock each)", k, u, "", "", "")
	for _, q := range []struct {
		q      float64
		label  string
		target time.Duration
	}{
		{0.5, "Latency: median, ms (knock sent → start command running)", 2 * time.Millisecond},
		{0.99, "Latency: 99th percentile, ms", 10 * time.Millisecond},
	} {
		k, u = both(func(x *result) string { return ms(quantile(x.lat, q.q)) })
		met = ""
		if r.ours != nil && len(r.ours.lat) > 0 {
			v := quantile(r.ours.lat, q.q)
			met = yesNo(v <= q.target, fmt.Sprintf("%.2f× the target", float64(v)/float64(q.target)))
		}
		add(q.label, k, u, ratioOf(func(x *result) (float64, bool) {
			return float64(quantile(x.lat, q.q)), len(x.lat) > 0
		}), fmt.Sprintf("≤ %d ms", q.target/time.Millisecond), met)
	}
	k, u = both(func(x *result) string { return ms(quantile(x.lat, 0)) + " / " + ms(quantile(x.lat, 1)) })
	add("Latency: min / max, ms", k, u, "", "", "")
	if len(r.shell) > 0 {
		sh := fmt.Sprintf("%s / %s", ms(quantile(r.shell, 0.5)), ms(quantile(r.shell, 0.99)))
		add("Latency floor: the start command started by the bench itself (no daemon), median / p99, ms", sh, sh, "", "", "")
		if r.ours != nil && len(r.ours.lat) > 0 {
			add("Latency: ours less the floor, medians, ms", "", ms(quantile(r.ours.lat, 0.5)-quantile(r.shell, 0.5)), "", "", "")
		}
	}

	// Idle.
	k, u = both(func(x *result) string { return fmt.Sprintf("%.3f", float64(x.idleCPU)/float64(time.Millisecond)) })
	add(fmt.Sprintf("Idle %v: CPU, ms", o.idle), k, u, ratioOf(func(x *result) (float64, bool) { return float64(x.idleCPU), true }), "", "")
	k, u = both(func(x *result) string { return fmt.Sprintf("%d (%d threads)", x.idleWakeups, x.threads) })
	met = ""
	if r.ours != nil {
		met = yesNo(r.ours.idleWakeups == 0, fmt.Sprintf("%d in %v", r.ours.idleWakeups, r.ours.idle.Round(time.Second)))
	}
	add(fmt.Sprintf("Idle %v: wake-ups (context switches, all threads)", o.idle), k, u, ratioOf(func(x *result) (float64, bool) { return float64(x.idleWakeups), true }), "0", met)

	r.secondRows(add)
	r.metricsRows(add)

	// Matcher: per event (Handle), and in batches as the daemon calls it
	// (HandleBatch).
	kinds := []struct{ prefix, label string }{
		{"Handle", "one event per call"},
		{"HandleBatch", "batches of 256, as the daemon calls it"},
	}
	for _, kind := range kinds {
		var at1, at1M float64
		for _, b := range r.matcher {
			name, ok := strings.CutPrefix(b.name, kind.prefix+"/")
			if !ok {
				continue
			}
			met := yesNo(b.eventsSec >= 5e6 && b.allocsOp == 0,
				fmt.Sprintf("%.2f× the rate", b.eventsSec/5e6))
			add(fmt.Sprintf("Matcher (%s), %s in progress: events/s; allocs, B per event", kind.label, name), "",
				fmt.Sprintf("%s; %g, %g", num(int(b.eventsSec)), b.allocsOp, b.bytesOp), "", "≥ 5,000,000; 0", met)
			switch name {
			case "sources=1":
				at1 = b.eventsSec
			case "sources=1000000":
				at1M = b.eventsSec
			}
		}
		if at1 > 0 && at1M > 0 {
			add(fmt.Sprintf("Matcher (%s): rate at 1,000,000 sources / rate at 1", kind.label), "", fmt.Sprintf("%.2f", at1M/at1), "", "≥ 0.8",
				yesNo(at1M/at1 >= 0.8, fmt.Sprintf("%.2f", at1M/at1)))
		}
	}
	for _, b := range r.matcher {
		label := map[string]string{"Flood": "one event per call", "FloodBatch": "batches of 256"}[b.name]
		if label == "" {
			continue
		}
		add(fmt.Sprintf("Matcher (%s), flood: a new attempt per event, at the cap: events/s; allocs, B per event", label), "",
			fmt.Sprintf("%s; %g, %g", num(int(b.eventsSec)), b.allocsOp, b.bytesOp), "", "", "")
	}

	fmt.Fprintln(w, "| Measure | knockd 0.8 | ours | ours/knockd | Target (ours) | Met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	dash := func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	}
	for _, x := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", x.measure, dash(x.knockd), dash(x.ours), dash(x.ratio), dash(x.target), dash(x.met))
	}
	fmt.Fprintln(w)
	if r.ksets != nil {
		r.printKsets(w)
	}
}

// printKsets prints the kernel-set phase: one row per way of opening.
func (r *report) printKsets(w io.Writer) {
	o := r.opts
	if r.baseline.took == 0 {
		// Run alone (-ksets-only): the heading the main table has.
		fmt.Fprintf(w, "%s, %s, %d CPUs, Linux %s; %s, run took %v.\n",
			r.started.UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), kernel(),
			runtime.Version(), r.took.Round(time.Second))
		fmt.Fprintf(w, "Command: `go run ./cmd/knock-bench %s`\n\n", strings.Join(os.Args[1:], " "))
	}
	fmt.Fprintf(w, "### Kernel sets: %d timed openings into an nftables set; a crowd of %s sources each completing a two-knock UDP sequence, all within one second\n\n",
		o.ksetOpenings, num(o.ksetCrowd))
	fmt.Fprintln(w, "| Opening | Knock sent → element in the set, ms: median / p99 / max | Crowd: sources in the set | Crowd: first frame → last one in, s | Crowd: daemon CPU, s (its shell commands') | Peak RSS, MiB |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, x := range r.ksets {
		lat := "— (no notifications to time ipsets by)"
		if x.v.nft() {
			if len(x.lat) == 0 {
				lat = "none arrived"
			} else {
				lat = ms(quantile(x.lat, 0.5)) + " / " + ms(quantile(x.lat, 0.99)) + " / " + ms(quantile(x.lat, 1))
			}
			if x.latMissed > 0 {
				lat += fmt.Sprintf(" (%d of %d not in within 2 s)", x.latMissed, o.ksetOpenings)
			}
		}
		took := fmt.Sprintf("%.3f", x.took.Seconds())
		if !x.all {
			took = fmt.Sprintf("not all within the %v cap", x.cap)
		}
		in := fmt.Sprintf("%s / %s", num(x.in), num(x.crowd))
		if !x.monitorOK {
			in += " (the monitor lost notifications)"
		}
		fmt.Fprintf(w, "| %v | %s | %s | %s | %.3f (%.2f) | %.1f |\n", x.v, lat, in, took, x.cpu.Seconds(), x.childCPU.Seconds(), float64(x.rss)/(1<<20))
	}
	fmt.Fprintln(w)
	var set, shell, kd *ksetResult
	for _, x := range r.ksets {
		switch x.v {
		case ksetVariant{"ours", "NFT_Set"}:
			set = x
		case ksetVariant{"ours", "nft shell"}:
			shell = x
		case ksetVariant{"knockd", "nft shell"}:
			kd = x
		}
	}
	if set != nil && len(set.lat) > 0 {
		med, p99 := quantile(set.lat, 0.5), quantile(set.lat, 0.99)
		fmt.Fprintf(w, "Targets (ours, NFT_Set): median ≤ 0.3 ms: %s; p99 ≤ 1 ms: %s; crowd all in within 1.5 s: %s.",
			yesNo(med <= 300*time.Microsecond, ms(med)+" ms"), yesNo(p99 <= time.Millisecond, ms(p99)+" ms"),
			yesNo(set.all && set.took <= 1500*time.Millisecond, fmt.Sprintf("%s in, %.3f s", num(set.in), set.took.Seconds())))
		for _, b := range []*ksetResult{shell, kd} {
			if b != nil && len(b.lat) > 0 {
				fmt.Fprintf(w, " Median latency %v / NFT_Set: %.3g×.", b.v, float64(quantile(b.lat, 0.5))/float64(med))
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
	}
	var mon []string
	for _, x := range r.ksets {
		if len(x.latMonitor) > 0 {
			mon = append(mon, fmt.Sprintf("%v %s / %s", x.v, ms(quantile(x.latMonitor, 0.5)), ms(quantile(x.latMonitor, 0.99))))
		}
	}
	if len(mon) > 0 {
		fmt.Fprintf(w, "The latencies above are stamped by a probe that reads the notifications as they come, without sleeping; "+
			"stamped by an nftables monitor that sleeps until each wakes it (its own wake-up counted in), median / p99, ms: %s.\n\n", strings.Join(mon, "; "))
	}
}

// processed is what the kernel delivered to the daemon.
func (x *result) processed() uint64 {
	if x.sock.drops > x.sock.packets {
		return 0
	}
	return x.sock.packets - x.sock.drops
}

func cell(x *result, f func(*result) string) string {
	if x == nil {
		return ""
	}
	return f(x)
}

func yesNo(ok bool, miss string) string {
	if ok {
		return "yes"
	}
	return "**no**: " + miss
}

// quantile returns the q-quantile of sorted d by the nearest rank.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func pct(a, b uint64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

// num prints n with thousands separators.
func num(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// secondRows adds the rows of the second run: the storm, the survival
// flood.
func (r *report) secondRows(add func(measure, knockd, ours, ratio, target, met string)) {
	o := r.opts
	both := func(f func(*result) string) (string, string) {
		return cell(r.knockd, f), cell(r.ours, f)
	}

	if o.storm > 0 {
		st := func(f func(*stormResult) string) func(*result) string {
			return phase(func(x *result) *stormResult { return x.storm }, f)
		}
		k, u := both(st(func(s *stormResult) string {
			return fmt.Sprintf("%s in %.2f s (%s/s)", num(s.gen.sent), s.gen.took.Seconds(), num(int(float64(s.gen.sent)/s.gen.took.Seconds())))
		}))
		add(fmt.Sprintf("Storm: spoofed UDP datagrams to a one-port door whose command is `sleep 1`, sent (%d knocks on another door meanwhile)", o.stormKnocks), k, u, "", "", "")
		k, u = both(st(func(s *stormResult) string {
			return fmt.Sprintf("%d/%d OPEN SESAME, %d/%d commands ran", s.sesames, s.knocks, s.ran, s.knocks)
		}))
		add(fmt.Sprintf("Storm: the other door's knocks, logged / run within %v of the storm's end", o.stormWait), k, u, "", "", "")
		latency := func(d func(*stormResult) []time.Duration) func(*stormResult) string {
			return func(s *stormResult) string {
				v := d(s)
				if len(v) == 0 {
					return "none ran"
				}
				c := ms(quantile(v, 0.5)) + " / " + ms(quantile(v, 1))
				if miss := s.knocks - s.ran; miss > 0 {
					c += fmt.Sprintf(" (%d not run within %v)", miss, s.wait)
				}
				return c
			}
		}
		k, u = both(st(latency(func(s *stormResult) []time.Duration { return s.sesameToCmd })))
		met := ""
		if r.ours != nil && r.ours.storm != nil {
			s := r.ours.storm
			switch {
			case s.ran < s.knocks || len(s.sesameToCmd) < s.knocks:
				met = yesNo(false, fmt.Sprintf("%d of %d ran within %v", s.ran, s.knocks, s.wait))
			default:
				worst := quantile(s.sesameToCmd, 1)
				met = yesNo(worst <= 100*time.Millisecond, fmt.Sprintf("%.2f× the target", float64(worst)/float64(100*time.Millisecond)))
			}
		}
		add("Storm: the other door's start command, its OPEN SESAME → running, ms: median / max", k, u, "", "≤ 100 ms", met)
		k, u = both(st(latency(func(s *stormResult) []time.Duration { return s.sentToCmd })))
		add("Storm: the other door's start command, knock sent → running, ms: median / max", k, u, "", "", "")
		k, u = both(st(func(s *stormResult) string {
			return fmt.Sprintf("%s / %s", num(s.stormOpen), num(s.stormCmd))
		}))
		add(fmt.Sprintf("Storm: the stormed door's OPEN SESAME / running command lines, storm start to %v after its end", o.stormWait), k, u, "", "", "")
	}

	if len(o.surviveGaps) > 0 {
		sv := func(f func(*survivalResult) string) func(*result) string {
			return phase(func(x *result) *survivalResult { return x.survival }, f)
		}
		k, u := both(sv(func(s *survivalResult) string {
			return fmt.Sprintf("%s in %.2f s (%s/s)", num(s.gen.sent), s.gen.took.Seconds(), num(int(s.rate())))
		}))
		add(fmt.Sprintf("Survival: IPv6 SYNs to the first port from spoofed sources used once each (knockers from frame %s), sent", num(o.surviveWarmup)), k, u, "", "", "")
		k, u = both(sv(func(s *survivalResult) string {
			return fmt.Sprintf("%s (%s)", num(int(s.sock.drops)), pct(s.sock.drops, s.sock.packets))
		}))
		add("Survival: dropped by the kernel, socket queue or ring full", k, u, "", "", "")
		k, u = both(sv(func(s *survivalResult) string {
			var parts []string
			for i, g := range s.gaps {
				parts = append(parts, fmt.Sprintf("%s: %d/%d", short(g), s.opened[i], s.knockers))
			}
			c := "before the flood: no"
			if s.control {
				c = "before the flood: yes"
			}
			return c + "; " + strings.Join(parts, ", ")
		}))
		add("Survival: knockers that opened the door, by spoofed frames between two knocks", k, u, "", "", "")
		k, u = both(sv(func(s *survivalResult) string {
			g, ok := s.longest()
			if !ok {
				return "none"
			}
			return num(g)
		}))
		met := ""
		if r.ours != nil && r.ours.survival != nil {
			g, _ := r.ours.survival.longest()
			met = yesNo(g >= 500_000, num(g))
		}
		add("Survival: newer spoofed attempts a stage-1 knocker survives (the longest pause with every knocker in)", k, u, "", "≥ 500,000", met)
		k, u = both(sv(func(s *survivalResult) string {
			g, ok := s.longest()
			if !ok {
				return "none"
			}
			return fmt.Sprintf("%.3f at %s/s", float64(g)/s.rate(), num(int(s.rate())))
		}))
		add("Survival: that pause between knocks, s, at the flood's rate", k, u, "", "", "")
		k, u = both(sv(func(s *survivalResult) string { return fmt.Sprintf("%.1f", float64(s.rss)/(1<<20)) }))
		met = ""
		if r.ours != nil && r.ours.survival != nil {
			mib := float64(r.ours.survival.rss) / (1 << 20)
			if mib <= 64 {
				met = "yes (the whole process)"
			} else {
				met = fmt.Sprintf("not shown: the whole process holds %.1f MiB", mib)
			}
		}
		add("Survival: peak RSS of the second run (VmHWM), MiB", k, u, "", "matcher ≤ 64 MiB", met)
	}
}

// phase makes a cell of a phase's result, empty where the phase did not
// run.
func phase[T any](get func(*result) *T, f func(*T) string) func(*result) string {
	return func(x *result) string {
		if p := get(x); p != nil {
			return f(p)
		}
		return ""
	}
}

// short prints a count as 50k or 1.5M.
func short(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return num(n)
}

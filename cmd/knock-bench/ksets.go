//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The kernel-set phase: openings that add the knocker to an nftables set
// or an ipset, by our daemon's NFT_Set and IPSet doors (netlink, nothing
// forked) and by a shell Start_Command running nft or ipset, in our
// daemon and in knockd 0.8. The element's arrival in an nftables set is
// stamped by its NFT_MSG_NEWSETELEM notification, on netlink sockets of
// this command in the server namespace, so the time is the kernel's
// commit, not a poll's: a timed opening's by latProbe, which reads them
// without sleeping, and also by an nftables monitor, which sleeps until
// one comes (nftWatcher), the crowd's by the monitor. ipsets send no
// notifications, and are polled every ipsetPoll (a test for the crowd's
// last source).
const (
	ksetTable   = "kbench"
	ksetLatPort = 6200
	ksetCrowdP1 = 6300
	ksetCrowdP2 = 6301
	ksetTimeout = 300 // the doors' Cmd_Timeout, s: nothing expires during a run
	ipsetPoll   = time.Millisecond
)

// ksetVariant is one way of opening: a daemon and what its doors do.
type ksetVariant struct {
	daemon string // "knockd" or "ours"
	how    string // "NFT_Set", "nft shell", "IPSet", "ipset shell"
}

func (v ksetVariant) nft() bool { return v.how == "NFT_Set" || v.how == "nft shell" }

func (v ksetVariant) String() string {
	d := "knockd 0.8"
	if v.daemon == "ours" {
		d = "ours"
	}
	switch v.how {
	case "NFT_Set":
		return d + ", NFT_Set"
	case "IPSet":
		return d + ", IPSet"
	case "nft shell":
		return d + ", Start_Command nft add element"
	}
	return d + ", Start_Command ipset add"
}

// opening is the door key that adds the knocker to set.
func (v ksetVariant) opening(set string) string {
	switch v.how {
	case "NFT_Set":
		return fmt.Sprintf("NFT_Set = inet %s %s", ksetTable, set)
	case "IPSet":
		return "IPSet = " + set
	case "nft shell":
		return fmt.Sprintf("Start_Command = nft add element inet %s %s { %%IP%% timeout %ds }", ksetTable, set, ksetTimeout)
	}
	return fmt.Sprintf("Start_Command = ipset add %s %%IP%% timeout %d -exist", set, ksetTimeout)
}

// ksetResult is one variant's figures.
type ksetResult struct {
	v ksetVariant
	// Latency: knock sent → element in the set, stamped by latProbe,
	// sorted; nil for ipsets (not measured: no notification to stamp it
	// by).
	lat       []time.Duration
	latMissed int
	// The same, stamped by the nftables monitor, whose goroutine sleeps
	// until a notification wakes it (latProbe says why lat is not).
	latMonitor []time.Duration
	// Crowd.
	crowd     int           // sources, each sending the two knocks
	sent      floodResult   // the generator's
	in        int           // sources in the set at the end
	took      time.Duration // first frame sent → last element in (or the cap)
	all       bool          // every source got in before the cap
	cpu       time.Duration // the daemon's own CPU, first frame → end
	childCPU  time.Duration // its reaped children's (the shell commands), same span; tick-based
	rss       uint64        // the daemon's VmHWM at the end
	cap       time.Duration
	monitorOK bool // the monitor saw every notification (no ENOBUFS)
}

// ksetVariants are the variants run, in order.
func ksetVariants(o options) []ksetVariant {
	var vs []ksetVariant
	for _, v := range []ksetVariant{{"ours", "NFT_Set"}, {"ours", "nft shell"}, {"knockd", "nft shell"}, {"ours", "IPSet"}, {"ours", "ipset shell"}, {"knockd", "ipset shell"}} {
		if o.only == "" || o.only == v.daemon {
			vs = append(vs, v)
		}
	}
	return vs
}

// ksets runs every variant, one after the other.
func ksets(ctx context.Context, o options, e *env) ([]*ksetResult, error) {
	// vishvananda/netlink logs the ipset attributes it does not know.
	log.SetOutput(io.Discard)
	var rs []*ksetResult
	for _, v := range ksetVariants(o) {
		bin := o.ours
		if v.daemon == "knockd" {
			bin = o.knockd
		}
		r, err := ksetRun(ctx, o, e, v, bin)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", v, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// latKnocker and crowdSource are the addresses of the phase's knockers:
// 198.18.2.0/23 for the timed openings, 198.19.0.0/16 for the crowd.
func latKnocker(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, 2 + byte(i/250), 1 + byte(i%250)})
}

func crowdSource(i int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 198<<24|19<<16|uint32(i+1))
	return netip.AddrFrom4(b)
}

func ksetRun(ctx context.Context, o options, e *env, v ksetVariant, bin string) (*ksetResult, error) {
	l := e.lab
	res := &ksetResult{v: v, crowd: o.ksetCrowd, cap: o.ksetCap}
	// A fresh table or ipsets, in the server namespace only.
	if v.nft() {
		rules := fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\ntable inet %[1]s {\n\tset lat4 { type ipv4_addr; flags timeout; }\n\tset crowd4 { type ipv4_addr; flags timeout; size 65536; }\n}\n", ksetTable)
		f := filepath.Join(e.dir, "kset.nft")
		if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
			return nil, err
		}
		if out, err := l.server.Command("nft", "-f", f).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("nft -f: %v: %s", err, out)
		}
	} else {
		for _, s := range []string{"lat4", "crowd4"} {
			l.server.Command("ipset", "destroy", s).Run()
			if out, err := l.server.Command("ipset", "create", s, "hash:ip", "family", "inet", "timeout", "60", "maxelem", "65536").CombinedOutput(); err != nil {
				return nil, fmt.Errorf("ipset create: %v: %s", err, out)
			}
		}
	}
	conf := filepath.Join(e.dir, "knockd-kset.conf")
	text := e.base + fmt.Sprintf(`
[klat]
	Sequence    = %d:udp
	Seq_Timeout = 5
	Cmd_Timeout = %d
	%s

[kcrowd]
	Sequence    = %d:udp,%d:udp
	Seq_Timeout = 5
	Cmd_Timeout = %d
	%s
`, ksetLatPort, ksetTimeout, v.opening("lat4"), ksetCrowdP1, ksetCrowdP2, ksetTimeout, v.opening("crowd4"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	tag := v.daemon + "-kset-" + strings.ReplaceAll(v.how, " ", "-")
	d, err := e.startDaemon(ctx, o, v.daemon, bin, conf, tag, nil)
	if err != nil {
		return nil, err
	}
	defer d.stop()

	nsFd, err := unix.Open("/var/run/netns/"+l.server.Name(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(nsFd)
	var w setWatcher
	if v.nft() {
		nw, err := watchNFT(nsFd)
		if err != nil {
			return nil, err
		}
		w = nw
	} else {
		w = &ipsetWatcher{nsFd: nsFd}
	}
	defer w.close()

	tx, err := openTx(l.client, l.veth.A.Dev)
	if err != nil {
		return nil, err
	}
	defer tx.Close()
	plan := newPlan(o, l)
	plan.udp, plan.legit, plan.spoofed = true, 0, 0

	// Latency: one knock at a time, each from an address of its own, so
	// that each is a new element.
	if v.nft() {
		probe, err := newLatProbe(nsFd)
		if err != nil {
			return nil, err
		}
		logf("%v: %d timed openings, %v apart", v, o.ksetOpenings, o.latencyGap)
		for i := range o.ksetOpenings {
			src := latKnocker(i)
			plan.port, plan.knocks = ksetLatPort, map[int]knock{0: {src, ksetLatPort}}
			probe.drain()
			var sent atomic.Int64
			g, err := tx.flood(ctx, plan, &sent)
			if err != nil {
				probe.close()
				return nil, err
			}
			at, ok := probe.wait(ctx, "lat4", src, 2*time.Second)
			if !ok {
				res.latMissed++
			} else {
				res.lat = append(res.lat, at.Sub(g.start))
			}
			if at, ok := w.(*nftWatcher).wait(ctx, src, 2*time.Second); ok {
				res.latMonitor = append(res.latMonitor, at.Sub(g.start))
			}
			if err := sleep(ctx, o.latencyGap); err != nil {
				probe.close()
				return nil, err
			}
		}
		probe.close()
		slices.Sort(res.lat)
		slices.Sort(res.latMonitor)
	}

	// The crowd: every source knocks the two ports, paced so that all
	// have sent their sequence within one second.
	plan.port, plan.rate = ksetCrowdP1, 2*o.ksetCrowd
	plan.knocks = make(map[int]knock, 2*o.ksetCrowd)
	want := make([]netip.Addr, o.ksetCrowd)
	for i := range o.ksetCrowd {
		want[i] = crowdSource(i)
		plan.knocks[2*i] = knock{want[i], ksetCrowdP1}
		plan.knocks[2*i+1] = knock{want[i], ksetCrowdP2}
	}
	cpu0, _ := cpuTime(d.pid)
	child0 := childCPU(d.pid)
	logf("%v: crowd of %d sources, each knocking %d,%d within 1 s; waiting at most %v for all", v, o.ksetCrowd, ksetCrowdP1, ksetCrowdP2, o.ksetCap)
	var sent atomic.Int64
	g, err := tx.flood(ctx, plan, &sent)
	if err != nil {
		return nil, err
	}
	res.sent = g
	res.in, res.took, res.all = w.waitAll(ctx, want, g.start, o.ksetCap)
	cpu1, _ := cpuTime(d.pid)
	res.cpu = cpu1 - cpu0
	res.childCPU = childCPU(d.pid) - child0
	res.rss, _ = peakRSS(d.pid)
	res.monitorOK = w.ok()
	logf("%v: %d of %d in the set %v after the first frame (generator: %v)", v, res.in, o.ksetCrowd, res.took.Round(time.Millisecond), g.took.Round(time.Millisecond))
	d.stop()
	return res, nil
}

// childCPU returns the CPU time of pid's children that it has waited for
// (cutime + cstime of /proc/PID/stat), in clock ticks of 10 ms.
func childCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name, which ends with the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// state is field 3; cutime and cstime are fields 16 and 17.
	if len(f) < 15 {
		return 0
	}
	cu, _ := strconv.ParseInt(f[13], 10, 64)
	cs, _ := strconv.ParseInt(f[14], 10, 64)
	return time.Duration(cu+cs) * 10 * time.Millisecond
}

// setWatcher tells when addresses arrived in a set.
type setWatcher interface {
	// waitAll waits until every address of want is in the crowd's set,
	// at most limit after start; it returns how many are, and when the
	// last came (or limit).
	waitAll(ctx context.Context, want []netip.Addr, start time.Time, limit time.Duration) (int, time.Duration, bool)
	ok() bool
	close()
}

// nftWatcher stamps every element added to the table's sets as its
// notification arrives.
type nftWatcher struct {
	mon    *nftables.Monitor
	mu     sync.Mutex
	at     map[netip.Addr]time.Time
	notify chan struct{}
	failed atomic.Bool
	done   chan struct{}
}

func watchNFT(nsFd int) (*nftWatcher, error) {
	// A big receive buffer: the crowd's 10,000 notifications come at
	// once, and the monitor would lose them (ENOBUFS) with the default.
	big := func(c *netlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		}); err != nil {
			return err
		}
		return serr
	}
	c, err := nftables.New(nftables.WithNetNSFd(nsFd), nftables.WithSockOptions(big))
	if err != nil {
		return nil, err
	}
	w := &nftWatcher{at: map[netip.Addr]time.Time{}, notify: make(chan struct{}, 1), done: make(chan struct{})}
	w.mon = nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectElements), nftables.WithMonitorAction(nftables.MonitorActionNew),
		nftables.WithMonitorEventBuffer(1<<16))
	ch, err := c.AddGenerationalMonitor(w.mon)
	if err != nil {
		return nil, fmt.Errorf("nftables monitor: %w", err)
	}
	go func() {
		defer close(w.done)
		for evs := range ch {
			now := time.Now()
			w.mu.Lock()
			for _, ev := range evs.Changes {
				if ev.Error != nil {
					w.failed.Store(true)
					continue
				}
				es, _ := ev.Data.([]nftables.SetElement)
				for _, e := range es {
					if a, ok := netip.AddrFromSlice(e.Key); ok {
						if _, seen := w.at[a]; !seen {
							w.at[a] = now
						}
					}
				}
			}
			w.mu.Unlock()
			select {
			case w.notify <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

func (w *nftWatcher) wait(ctx context.Context, a netip.Addr, limit time.Duration) (time.Time, bool) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		t, ok := w.at[a]
		w.mu.Unlock()
		if ok {
			return t, true
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}

func (w *nftWatcher) waitAll(ctx context.Context, want []netip.Addr, start time.Time, limit time.Duration) (int, time.Duration, bool) {
	deadline := time.NewTimer(time.Until(start.Add(limit)))
	defer deadline.Stop()
	for {
		w.mu.Lock()
		n, last := 0, start
		for _, a := range want {
			if t, ok := w.at[a]; ok {
				n++
				if t.After(last) {
					last = t
				}
			}
		}
		w.mu.Unlock()
		if n == len(want) {
			return n, last.Sub(start), true
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			return n, limit, false
		case <-ctx.Done():
			return n, limit, false
		}
	}
}

func (w *nftWatcher) ok() bool { return !w.failed.Load() }

func (w *nftWatcher) close() {
	w.mon.Close()
	<-w.done
}

// ipsetWatcher polls the crowd's ipset.
type ipsetWatcher struct{ nsFd int }

func (w *ipsetWatcher) waitAll(ctx context.Context, want []netip.Addr, start time.Time, limit time.Duration) (int, time.Duration, bool) {
	h, err := vnl.NewHandleAt(netns.NsHandle(w.nsFd), unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, 0, false
	}
	defer h.Close()
	wanted := make(map[netip.Addr]bool, len(want))
	for _, a := range want {
		wanted[a] = true
	}
	// The last source sends last: test for it every millisecond (a
	// small request), and count the whole set, which costs a dump, only
	// once it is there.
	last := want[len(want)-1]
	n := 0
	for {
		now := time.Now()
		if in, err := h.IpsetTest("crowd4", &vnl.IPSetEntry{IP: last.AsSlice()}); err == nil && in {
			if res, err := h.IpsetList("crowd4"); err == nil {
				n = 0
				for _, e := range res.Entries {
					if a, ok := netip.AddrFromSlice(e.IP); ok && wanted[a.Unmap()] {
						n++
					}
				}
			}
			if n == len(want) {
				return n, now.Sub(start), true
			}
		}
		if now.Sub(start) > limit || ctx.Err() != nil {
			if res, err := h.IpsetList("crowd4"); err == nil {
				n = 0
				for _, e := range res.Entries {
					if a, ok := netip.AddrFromSlice(e.IP); ok && wanted[a.Unmap()] {
						n++
					}
				}
			}
			return n, limit, false
		}
		time.Sleep(ipsetPoll)
	}
}

func (w *ipsetWatcher) ok() bool { return true }
func (w *ipsetWatcher) close()   {}

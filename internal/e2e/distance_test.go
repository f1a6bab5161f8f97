package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// Knocking across distance (issue 6): a client and a server, each in a
// network namespace of its own, joined by a link that delays every packet
// by oneWay each way. Over loopback or a veth pair a round trip takes
// microseconds, and knock 0.8's TCP knocks happen to complete their
// handshake; over a real network they do not, and the two backends differ.

// oneWay is the delay each way: a knocker in the next country.
const oneWay = 20 * time.Millisecond

// The doors every distance daemon serves. Each tool has a door of its
// own, so a tool that stops half way cannot spoil the next one's knocks:
// its first knock, to another door's port, ends the stale attempt.
const distanceDoors = `
[mixed]
	sequence = 7001,7002:udp,7003
	seq_timeout = 5
	command = echo mixed %IP% >> {out}
[tcponly]
	sequence = 7011,7012,7013
	seq_timeout = 5
	command = echo tcponly %IP% >> {out}
[udponly]
	sequence = 7061:udp,7062:udp,7063:udp
	seq_timeout = 5
	command = echo udponly %IP% >> {out}
[dropped]
	sequence = 7021,7022,7023
	seq_timeout = 5
	command = echo dropped %IP% >> {out}
[nc]
	sequence = 7031,7032,7033
	seq_timeout = 5
	command = echo nc %IP% >> {out}
[telnet]
	sequence = 7041,7042,7043
	seq_timeout = 5
	command = echo telnet %IP% >> {out}
[curl]
	sequence = 7051,7052,7053
	seq_timeout = 5
	command = echo curl %IP% >> {out}
[nc-dropped]
	sequence = 7131,7132,7133
	seq_timeout = 15
	command = echo nc-dropped %IP% >> {out}
[telnet-dropped]
	sequence = 7141,7142,7143
	seq_timeout = 15
	command = echo telnet-dropped %IP% >> {out}
[curl-dropped]
	sequence = 7151,7152,7153
	seq_timeout = 15
	command = echo curl-dropped %IP% >> {out}
`

// The server's firewall for the dropped doors (dropped and the tools'
// *-dropped): their ports drop silently, as on a host guarded by a knock
// daemon.
var droppedPorts = [][2]int{{7021, 7023}, {7100, 7199}}

// distanceLab is a knockd in a server namespace and a client namespace
// oneWay away from it.
type distanceLab struct {
	client, server *netlab.Netns
	link           *netlab.DelayLink
	host           string // the server's address, as clients knock it
	peer           string // the client's address, as knockd logs it
	out            string // where the doors' commands write
	d              *daemon
}

// newDistanceLab starts knockd on backend in a new server namespace, with
// firewall commands run there first.
func newDistanceLab(t *testing.T, backend string, firewall func(server *netlab.Netns)) *distanceLab {
	t.Helper()
	netlab.Require(t)
	l := &distanceLab{client: netlab.NewNetns(t, "kdist-cli"), server: netlab.NewNetns(t, "kdist-srv")}
	l.link = netlab.NewDelayLink(t, l.client, l.server, netlab.DelayConfig{
		Delay:      oneWay,
		Addressing: netlab.Addressing{NoIPv6: true},
	})
	l.host, l.peer = l.link.B.Addr.String(), l.link.A.Addr.String()
	if firewall != nil {
		firewall(l.server)
	}
	dir := t.TempDir()
	l.out = filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, strings.ReplaceAll(distanceDoors, "{out}", l.out))
	l.d = startDaemon(t, []string{"ip", "netns", "exec", l.server.Name()},
		"-c", conf, "-v", "--backend", backend, "-i", l.link.B.Dev, "--state-dir", filepath.Join(dir, "state"))
	// startDaemon stops at the first "listening on", which the listener's
	// per-socket lines may print; knockd's own comes once all is open.
	if ready := "listening on " + l.link.B.Dev + "..."; !strings.Contains(l.d.output(), ready) {
		l.d.waitLine(ready)
	}
	return l
}

// clientRun is one run of a client program in the client namespace.
type clientRun struct {
	took time.Duration
	out  string
	err  error // nil, or how it failed (exit status, timeout)
}

func (r clientRun) String() string {
	status := "exit 0"
	if r.err != nil {
		status = r.err.Error()
	}
	out := strings.Join(strings.Fields(r.out), " ")
	if len(out) > 100 {
		out = out[:100] + "..."
	}
	return fmt.Sprintf("%v, %s, output %q", r.took.Round(time.Millisecond), status, out)
}

// run runs a client program in the client namespace, stdin empty, for at
// most limit.
func (l *distanceLab) run(limit time.Duration, name string, args ...string) clientRun {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := l.client.CommandContext(ctx, name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := clientRun{took: time.Since(start), out: string(out), err: err}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("killed after %v", limit)
	}
	return r
}

// knock runs a knock client in the client namespace and fails the test if
// it fails.
func (l *distanceLab) knock(t *testing.T, client string, args ...string) clientRun {
	t.Helper()
	r := l.run(10*time.Second, client, append([]string{l.host}, args...)...)
	if r.err != nil {
		t.Fatalf("%s %s %s: %v", client, l.host, strings.Join(args, " "), r)
	}
	return r
}

// opened returns how many times door's command has run.
func (l *distanceLab) opened(door string) int {
	b, _ := os.ReadFile(l.out)
	return strings.Count(string(b), door+" "+l.peer+"\n")
}

// waitOpened waits up to limit for door's command to have run n times,
// and reports whether it did.
func (l *distanceLab) waitOpened(door string, n int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if l.opened(door) >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stageLines returns knockd's progress lines for door.
func (l *distanceLab) stageLines(door string) []string {
	var lines []string
	for _, s := range strings.Split(l.d.output(), "\n") {
		if strings.HasPrefix(s, l.peer+": "+door+": ") {
			lines = append(lines, s)
		}
	}
	return lines
}

var nftCounterRE = regexp.MustCompile(`counter packets (\d+)`)

// firewallDrops returns how many packets the nft rule of dropFirewall has
// dropped so far, or -1 when there is no such rule.
func (l *distanceLab) firewallDrops(t *testing.T) int {
	out, err := l.server.Command("nft", "list", "table", "inet", "knockdistance").CombinedOutput()
	if err != nil {
		return -1
	}
	m := nftCounterRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in the firewall rules:\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// dropFirewall makes the server drop the dropped door's TCP ports, with
// nft, or iptables when nft is not installed.
func dropFirewall(t *testing.T) func(*netlab.Netns) {
	return func(server *netlab.Netns) {
		t.Helper()
		if _, err := exec.LookPath("nft"); err == nil {
			var set []string
			for _, r := range droppedPorts {
				set = append(set, fmt.Sprintf("%d-%d", r[0], r[1]))
			}
			cmd := server.Command("nft", "-f", "-")
			cmd.Stdin = strings.NewReader(fmt.Sprintf(`table inet knockdistance {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport { %s } counter drop
	}
}
`, strings.Join(set, ", ")))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft: %v: %s", err, out)
			}
			return
		}
		if _, err := exec.LookPath("iptables"); err != nil {
			t.Skip("needs nft or iptables to drop the knock ports")
		}
		for _, r := range droppedPorts {
			server.Run(t, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprintf("%d:%d", r[0], r[1]), "-j", "DROP")
		}
	}
}

const (
	distanceTries = 20
	// distanceOpenLimit is how long a knock may take to open a door: far
	// more than the few round trips it needs, for slow CI machines.
	distanceOpenLimit = 5 * time.Second
	// distanceQuiet is how long a knock that must not count is given to
	// count anyway: dozens of round trips, and longer than knockd takes
	// to run a command.
	distanceQuiet = 2 * time.Second
)

func TestDistance(t *testing.T) {
	netlab.Require(t)
	knock08 := "/usr/bin/knock"
	if _, err := os.Stat(knock08); err != nil {
		knock08 = ""
	}

	t.Run("listener", func(t *testing.T) {
		t.Parallel()
		l := newDistanceLab(t, "listener", nil)
		t.Run("our knock opens every time", func(t *testing.T) { ourKnockOpensEveryTime(t, l) })
		t.Run("knock 0.8", func(t *testing.T) {
			if knock08 == "" {
				t.Skip("knock 0.8 not installed at /usr/bin/knock (Debian package knockd)")
			}
			// Its TCP knocks: one SYN each, and the socket is gone before
			// the SYN-ACK is back, so no handshake completes and the
			// listener never hears of them.
			r := l.knock(t, knock08, "7011", "7012", "7013")
			t.Logf("knock 0.8, TCP: %v", r)
			if l.waitOpened("tcponly", 1, distanceQuiet) {
				t.Errorf("knock 0.8's TCP knocks opened the door across %v on the listener backend; the README says they cannot", oneWay)
			}
			if lines := l.stageLines("tcponly"); len(lines) != 0 {
				t.Errorf("knock 0.8's TCP knocks were seen across %v on the listener backend:\n%s", oneWay, strings.Join(lines, "\n"))
			}
			// The door itself works: our client opens it.
			l.knock(t, knockBin, "7011", "7012", "7013")
			if !l.waitOpened("tcponly", 1, distanceOpenLimit) {
				t.Errorf("our knock did not open the door knock 0.8 could not:\n%s", l.d.output())
			}
			// Its UDP knocks are datagrams: they count.
			r = l.knock(t, knock08, "-u", "7061", "7062", "7063")
			t.Logf("knock 0.8, UDP: %v", r)
			if !l.waitOpened("udponly", 1, distanceOpenLimit) {
				t.Errorf("knock 0.8's UDP knocks did not open the door on the listener backend:\n%s", l.d.output())
			}
		})
		t.Run("other clients", func(t *testing.T) { measureTools(t, l, "", 7031, 5*time.Second) })
	})

	t.Run("raw", func(t *testing.T) {
		t.Parallel()
		l := newDistanceLab(t, "raw", dropFirewall(t))
		t.Run("our knock opens every time", func(t *testing.T) { ourKnockOpensEveryTime(t, l) })
		t.Run("knock 0.8", func(t *testing.T) {
			if knock08 == "" {
				t.Skip("knock 0.8 not installed at /usr/bin/knock (Debian package knockd)")
			}
			// The raw backend sees each SYN: that is the knock.
			r := l.knock(t, knock08, "7011", "7012", "7013")
			t.Logf("knock 0.8, TCP: %v", r)
			if !l.waitOpened("tcponly", 1, distanceOpenLimit) {
				t.Errorf("knock 0.8's TCP knocks did not open the door across %v on the raw backend:\n%s", oneWay, l.d.output())
			}
			before := l.opened("mixed")
			r = l.knock(t, knock08, "7001", "7002:udp", "7003")
			t.Logf("knock 0.8, TCP and UDP: %v", r)
			if !l.waitOpened("mixed", before+1, distanceOpenLimit) {
				t.Errorf("knock 0.8's mixed knocks did not open the door across %v on the raw backend:\n%s", oneWay, l.d.output())
			}
		})
		t.Run("dropped ports", func(t *testing.T) {
			// The firewall drops the knock ports: no answer comes, and
			// each TCP knock gives up after its 500 ms. The raw backend
			// sees the SYNs before the firewall drops them.
			drops := l.firewallDrops(t)
			r := l.knock(t, knockBin, "7021", "7022", "7023")
			t.Logf("our knock, 3 dropped TCP ports: %v", r)
			if drops >= 0 {
				// Giving up before the kernel's first retransmission (1 s)
				// sends one SYN per knock, as knock 0.8 does.
				if n := l.firewallDrops(t) - drops; n != 3 {
					t.Errorf("the firewall dropped %d packets for 3 knocks, want 3 SYNs", n)
				}
			}
			if r.took < 1400*time.Millisecond {
				t.Errorf("3 knocks on dropped ports took %v: the client did not wait for an answer (500 ms each)", r.took)
			}
			if r.took >= 3*time.Second {
				t.Errorf("3 knocks on dropped ports took %v, more than the documented 3 x 500 ms (with slack: 3 s)", r.took)
			}
			if !l.waitOpened("dropped", 1, distanceOpenLimit) {
				t.Errorf("knocks on dropped ports did not open the door on the raw backend:\n%s", l.d.output())
			}
			// One SYN per knock, not a retransmission: the door saw each
			// port once.
			if lines := l.stageLines("dropped"); len(lines) != 4 {
				t.Errorf("knockd's lines for the dropped door:\n%s\nwant Stage 1 to 3 and OPEN SESAME", strings.Join(lines, "\n"))
			}
			if knock08 != "" {
				r := l.knock(t, knock08, "7021", "7022", "7023")
				t.Logf("knock 0.8, 3 dropped TCP ports: %v", r)
				if !l.waitOpened("dropped", 2, distanceOpenLimit) {
					t.Errorf("knock 0.8 on dropped ports did not open the door on the raw backend:\n%s", l.d.output())
				}
			}
		})
		t.Run("other clients", func(t *testing.T) { measureTools(t, l, "", 7031, 5*time.Second) })
		t.Run("other clients, dropped ports", func(t *testing.T) { measureTools(t, l, "-dropped", 7131, 3*time.Second) })
	})
}

// ourKnockOpensEveryTime knocks the mixed door distanceTries times with our client,
// default flags, each knock after the door opened for the one before, and
// counts the opens.
func ourKnockOpensEveryTime(t *testing.T, l *distanceLab) {
	opens := 0
	var slowest time.Duration
	var failed []string
	for i := range distanceTries {
		r := l.knock(t, knockBin, "7001", "7002:udp", "7003")
		slowest = max(slowest, r.took)
		limit := distanceOpenLimit
		if len(failed) > 0 {
			// Once this machine has shown it is not too slow, the
			// rest of the count need not take minutes.
			limit = time.Second
		}
		if !l.waitOpened("mixed", opens+1, limit) {
			failed = append(failed, fmt.Sprintf("try %d (client: %v)", i+1, r))
			continue
		}
		opens++
	}
	t.Logf("our knock, P1,P2:udp,P3 across %v: door opened %d/%d times; slowest client run %v", oneWay, opens, distanceTries, slowest.Round(time.Millisecond))
	if opens != distanceTries {
		t.Errorf("the door opened %d/%d times; it did not open on:\n\t%s\nknockd said:\n%s", opens, distanceTries, strings.Join(failed, "\n\t"), l.d.output())
	}
}

// measureTools records what nc, telnet and curl do when used as knock
// clients across the distance: each connects to its door's three ports
// in turn, base, base+1 and base+2. It asserts nothing about them: the
// results are for the README. Each run is killed after limit.
func measureTools(t *testing.T, l *distanceLab, suffix string, base int, limit time.Duration) {
	tools := []struct {
		name string
		argv func(port string) []string
	}{
		{"nc", func(p string) []string { return []string{"nc", "-z", "-w", "2", l.host, p} }},
		{"telnet", func(p string) []string { return []string{"telnet", l.host, p} }},
		{"curl", func(p string) []string { return []string{"curl", "-sS", "-m", "2", "http://" + l.host + ":" + p + "/"} }},
	}
	for i, tool := range tools {
		door := tool.name + suffix
		if _, err := exec.LookPath(tool.name); err != nil {
			t.Logf("%s: not installed", tool.name)
			continue
		}
		var runs []string
		syns := l.firewallDrops(t)
		for k := range 3 {
			argv := tool.argv(fmt.Sprint(base + 10*i + k))
			runs = append(runs, l.run(limit, argv[0], argv[1:]...).String())
		}
		verdict := "door OPENED"
		if !l.waitOpened(door, 1, distanceQuiet) {
			verdict = "door NOT opened"
		}
		if syns >= 0 {
			verdict += fmt.Sprintf("; the firewall dropped %d packets", l.firewallDrops(t)-syns)
		}
		t.Logf("%s, 3 connections across %v: %s; knockd: %q\n\t%s", door, oneWay, verdict, l.stageLines(door), strings.Join(runs, "\n\t"))
	}
}

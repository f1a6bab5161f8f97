package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// udpKnock sends one datagram from src to 127.0.0.1:port.
func udpKnock(t *testing.T, src string, port int) {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0})
	c.Close()
}

// kill9 ends the daemon as a crash would.
func (d *daemon) kill9() {
	d.cmd.Process.Kill()
	<-d.done
}

// TestCrashSafety kills the daemon with SIGKILL at random moments, more
// than 50 times, during knock, open and close cycles, restarting it each
// time; then checks the promises: no opening left past its timeout, no
// stop command run twice, and one-time sequences used at most once and
// never lost.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the crash test takes about a minute")
	}
	dir := t.TempDir()
	p := freePorts(t, 3)
	const kills = 55
	const cmdTimeout = 1
	var seqs []string
	for i := 0; i < 400; i++ {
		seqs = append(seqs, fmt.Sprintf(" %d:udp,%d:udp", 20000+i, 30000+i))
	}
	otp := filepath.Join(dir, "otp.seq")
	writeFile(t, otp, strings.Join(seqs, "\n")+"\n")
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	// The "firewall": a file per opening. Start creates it and logs the
	// time; stop removes it and logs the time.
	start := fmt.Sprintf(`touch %[1]s/%%IP%%-DOOR && echo "%%IP%% DOOR start $(date +%%s.%%N)" >> %[2]s/events`, open, dir)
	stop := fmt.Sprintf(`rm %[1]s/%%IP%%-DOOR && echo "%%IP%% DOOR stop $(date +%%s.%%N)" >> %[2]s/events`, open, dir)
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[fixed]
	sequence = %d:udp,%d:udp
	seq_timeout = 5
	start_command = %s
	cmd_timeout = %d
	stop_command = %s
[otp]
	one_time_sequences = %s
	seq_timeout = 5
	start_command = %s
	cmd_timeout = %d
	stop_command = %s
`, p[0], p[1], strings.ReplaceAll(start, "DOOR", "fixed"), cmdTimeout, strings.ReplaceAll(stop, "DOOR", "fixed"),
		otp, strings.ReplaceAll(start, "DOOR", "otp"), cmdTimeout, strings.ReplaceAll(stop, "DOOR", "otp")))
	args := []string{"-c", conf, "-v", "-i", "lo", "--state-dir", filepath.Join(dir, "state")}

	var mu sync.Mutex
	d := startDaemon(t, nil, args...)
	done := make(chan struct{})
	killed := 0
	go func() {
		defer close(done)
		for killed < kills {
			time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
			mu.Lock()
			d.kill9()
			killed++
			d = startDaemon(t, nil, args...)
			mu.Unlock()
		}
	}()

	// Knock from a new source address each cycle, both doors.
	cycles := 0
	for running := true; running; cycles++ {
		select {
		case <-done:
			running = false
		default:
		}
		src := fmt.Sprintf("127.0.%d.%d", 1+cycles/250, 1+cycles%250)
		udpKnock(t, src, p[0])
		udpKnock(t, src, p[1])
		if s := firstUnused(otp); s != "" {
			for _, port := range strings.Split(s, ",") {
				n, _ := strconv.Atoi(strings.TrimSuffix(port, ":udp"))
				udpKnock(t, src, n)
			}
		}
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
	}
	// Let every pending stop command come due with the daemon up.
	time.Sleep(time.Duration(cmdTimeout)*time.Second + 2*time.Second)
	mu.Lock()
	final := d
	mu.Unlock()

	// Replay every used one-time sequence from a fresh address: none may open.
	usedBefore := usedLines(otp)
	for _, s := range usedBefore {
		for _, port := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(strings.TrimSuffix(port, ":udp"))
			udpKnock(t, "127.0.200.1", n)
		}
	}
	time.Sleep(time.Duration(cmdTimeout)*time.Second + 2*time.Second)
	final.stop()

	events := fileLines(filepath.Join(dir, "events"))
	type opening struct {
		start, stop []float64
	}
	openings := map[string]*opening{}
	for _, e := range events {
		f := strings.Fields(e)
		if len(f) != 4 {
			t.Fatalf("bad event line %q", e)
		}
		key := f[0] + " " + f[1]
		o := openings[key]
		if o == nil {
			o = &opening{}
			openings[key] = o
		}
		ts, _ := strconv.ParseFloat(f[3], 64)
		if f[2] == "start" {
			o.start = append(o.start, ts)
		} else {
			o.stop = append(o.stop, ts)
		}
	}
	var late []string
	otpOpens, fixedOpens := 0, 0
	for key, o := range openings {
		if strings.HasPrefix(key, "127.0.200.1 ") {
			t.Errorf("a replayed one-time sequence opened: %s", key)
		}
		if len(o.start) != 1 || len(o.stop) != 1 {
			t.Errorf("%s: %d start and %d stop commands, want one of each", key, len(o.start), len(o.stop))
			continue
		}
		if strings.HasSuffix(key, " otp") {
			otpOpens++
		} else {
			fixedOpens++
		}
		// Past its timeout by more than a restart and some slack?
		if open := o.stop[0] - o.start[0]; open > cmdTimeout+3 {
			late = append(late, fmt.Sprintf("%s open %.1fs", key, open))
		}
	}
	if len(late) > 0 {
		sort.Strings(late)
		t.Errorf("openings that outlived Cmd_Timeout=%ds: %v", cmdTimeout, late)
	}
	if left, _ := os.ReadDir(open); len(left) != 0 {
		t.Errorf("openings left open at the end: %d", len(left))
	}
	used := len(usedLines(otp))
	// A kill between marking a line and running its start command spends
	// the line without an opening; nothing else may.
	if used < otpOpens || used > otpOpens+kills {
		t.Errorf("%d one-time lines marked used, %d one-time openings", used, otpOpens)
	}
	if used+len(seqsLeft(otp)) != len(seqs) {
		t.Errorf("one-time file damaged: %d used + %d left != %d", used, len(seqsLeft(otp)), len(seqs))
	}
	t.Logf("%d kills, %d knock cycles, %d openings of the fixed door, %d one-time openings, %d one-time lines used",
		killed, cycles, fixedOpens, otpOpens, used)
	if fixedOpens < cycles/4 {
		t.Errorf("only %d of %d cycles opened the fixed door", fixedOpens, cycles)
	}
}

// firstUnused returns the first sequence of a one-time file not yet used.
func firstUnused(path string) string {
	if l := seqsLeft(path); len(l) > 0 {
		return l[0]
	}
	return ""
}

func seqsLeft(path string) []string {
	var out []string
	for _, l := range fileLines(path) {
		if strings.HasPrefix(l, " ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func usedLines(path string) []string {
	var out []string
	for _, l := range fileLines(path) {
		if strings.HasPrefix(l, "#") {
			out = append(out, l[1:])
		}
	}
	return out
}

// TestReloadKeepsRunningConfiguration sends SIGHUP with each kind of
// broken configuration in turn: the daemon logs the error and keeps
// opening the door it had. A good configuration then takes over at once.
func TestReloadKeepsRunningConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 4)
	out := filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	good := func(a, b int) string {
		return fmt.Sprintf("[door]\n\tsequence = %d:udp,%d:udp\n\tseq_timeout = 5\n\tcommand = echo %d %%IP%% >> %s\n", a, b, a, out)
	}
	writeFile(t, conf, good(p[0], p[1]))
	d := startDaemon(t, nil, "-c", conf, "-v", "-i", "lo", "--state-dir", filepath.Join(dir, "state"))
	opens := 0
	knockAndWait := func(a, b int) {
		t.Helper()
		opens++
		src := fmt.Sprintf("127.0.3.%d", opens)
		udpKnock(t, src, a)
		udpKnock(t, src, b)
		waitFile(t, out, fmt.Sprintf("%d %s\n", a, src))
	}
	knockAndWait(p[0], p[1])

	broken := []string{
		"[door]\n\tsequence = 7000,abc\n",                          // port not a number
		"[door]\n\tsequence = 7000,8000,\n",                        // trailing comma
		"[door]\n\tsequence = 7000\n\tseq_timout = 5\n",            // unknown key
		"[door]\n\tsequence = 7000\n\ttcpflags = syn, ack\n",       // space-padded flag
		"[door]\n\tsequence = 7000\n[door]\n\tsequence = 8000\n",   // duplicate door
		"sequence = 7000\n[door]\n",                                // directive before a section
		"[door]\n\tone_time_sequences = /nonexistent/otp.seq\n",    // missing one-time file
		"[door]\n\tsequence = 7000\n\tseq_timeout = 5s\n",          // not whole seconds
		"[options]\n\tsequence = 7000\n",                           // key in the wrong section
		"[door]\n\tsequence = " + strings.Repeat("1,", 32) + "1\n", // too many ports
	}
	for i, b := range broken {
		writeFile(t, conf, b)
		d.cmd.Process.Signal(syscall.SIGHUP)
		waitOutput(t, d, "keeping the running configuration", i+1)
		knockAndWait(p[0], p[1])
	}

	// A good configuration replaces the old one: the old sequence no
	// longer opens, the new one does.
	writeFile(t, conf, good(p[2], p[3]))
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitOutput(t, d, "re-reading config file", len(broken)+1)
	time.Sleep(200 * time.Millisecond)
	udpKnock(t, "127.0.4.1", p[0])
	udpKnock(t, "127.0.4.1", p[1])
	knockAndWait(p[2], p[3])
	if strings.Contains(strings.Join(fileLines(out), "\n"), "127.0.4.1") {
		t.Errorf("the old sequence still opened after a good reload")
	}
}

// TestCommandBoundUnderUDPFlood sends 1,000 datagrams to a one-port UDP
// door: every one opens it, and never more than MaxCommands commands run
// at once.
func TestCommandBoundUnderUDPFlood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 1)
	out := filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	const bound = 4
	writeFile(t, conf, fmt.Sprintf("[options]\n\tMaxCommands = %d\n[one]\n\tsequence = %d:udp\n\tcommand = echo + >> %s; sleep 0.01; echo - >> %s\n",
		bound, p[0], out, out))
	d := startDaemon(t, nil, "-c", conf, "-i", "lo", "-v", "--state-dir", filepath.Join(dir, "state"))
	// Unconnected, so that the ICMP errors of the raw backend's closed
	// port do not fail every other send.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p[0]}
	const n = 1000
	for i := 0; i < n; i++ {
		if _, err := c.WriteTo([]byte{0}, to); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			// The listener backend reads from a socket buffer: pace the
			// sender a little so the kernel does not drop datagrams.
			time.Sleep(time.Millisecond)
		}
	}
	c.Close()
	// Every datagram the daemon saw opens the door; each opening's
	// command must run to its end. On a loaded host the kernel may drop
	// some datagrams before the daemon reads them: the bound on running
	// commands is what this test is about.
	deadline := time.Now().Add(60 * time.Second)
	for {
		opened := strings.Count(d.output(), ": one: OPEN SESAME")
		ended := 0
		for _, l := range fileLines(out) {
			if l == "-" {
				ended++
			}
		}
		if opened >= n/2 && ended == opened {
			time.Sleep(200 * time.Millisecond)
			if strings.Count(d.output(), ": one: OPEN SESAME") == opened {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: %d openings, %d commands ended (of %d datagrams)", opened, ended, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cur, peak := 0, 0
	for _, l := range fileLines(out) {
		if l == "+" {
			cur++
		} else {
			cur--
		}
		peak = max(peak, cur)
	}
	t.Logf("%d datagrams sent, %d commands run, at most %d at once (bound %d)", n, strings.Count(d.output(), ": one: OPEN SESAME"), peak, bound)
	if peak > bound {
		t.Errorf("%d commands ran at once, bound is %d", peak, bound)
	}
	d.stop()
	if strings.Contains(d.output(), "refused") {
		t.Errorf("commands were refused although the queue was large enough")
	}
}

// TestSpoofedFloodDoesNotStopAKnocker floods the first knock port with
// SYNs from 100,000 spoofed sources while a real knocker is half way
// through its sequence; with the attempt cap far below the flood, the
// knocker still opens the door.
func TestSpoofedFloodDoesNotStopAKnocker(t *testing.T) {
	t.Parallel()
	requireLab(t, "hping3")
	if testing.Short() {
		t.Skip("-short: the flood takes about 10 s")
	}
	dir := t.TempDir()
	server, client := netlab.NewNetns(t, "kfs"), netlab.NewNetns(t, "kfc")
	link := netlab.NewVeth(t, server, client, netlab.Addressing{A: netip.MustParseAddr("198.18.60.1"), B: netip.MustParseAddr("198.18.60.2"), NoIPv6: true})
	out := filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf("[options]\n\tMaxAttempts = 10000\n[door]\n\tsequence = 7001,7002,7003\n\tseq_timeout = 60\n\ttcpflags = syn\n\tcommand = echo open %%IP%% >> %s\n", out))
	d := startOurs(t, server, dir, conf, link.A.Dev)
	hping(t, client, "", "198.18.60.1", "7001")
	hping(t, client, "", "198.18.60.1", "7002")
	waitOutput(t, d, "198.18.60.2: door: Stage 2", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	flood := client.CommandContext(ctx, "hping3", "-q", "-S", "-p", "7001", "--rand-source", "-c", "100000", "-i", "u1", "198.18.60.1")
	if b, err := flood.CombinedOutput(); err != nil && flood.ProcessState.ExitCode() != 1 {
		t.Fatalf("flood: %v\n%s", err, b)
	}
	hping(t, client, "", "198.18.60.1", "7003")
	waitFile(t, out, "open 198.18.60.2\n")
	d.stop()
	summaries := strings.Count(d.output(), "stage messages suppressed in the last second")
	stage1 := len(linesWith(d.output(), ": door: Stage 1"))
	t.Logf("flood of 100000 spoofed SYNs: %d Stage 1 lines logged, %d summary lines", stage1, summaries)
	if summaries == 0 || stage1 > 100000/10 {
		t.Errorf("stage lines under the flood were not summarised:\n%s", d.output()[max(0, len(d.output())-2000):])
	}
	// The flood overfills MaxAttempts: the evictions are summarised too.
	if !strings.Contains(d.output(), "knock attempts evicted in the last second") {
		t.Errorf("no summary of evictions:\n%s", d.output()[max(0, len(d.output())-2000):])
	}
}

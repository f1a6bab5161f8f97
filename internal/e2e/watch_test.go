package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/knock-go/knock/internal/control"
	"github.com/knock-go/knock/internal/metricstest"
	"github.com/knock-go/knock/internal/netlab"
)

// ctlRun runs knockd as a client (--status, --revoke) with env added, in
// the host's namespace (the control socket is a file), and returns its
// output and exit status.
func ctlRun(t *testing.T, prefix, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append(append(append([]string{}, prefix...), knockdBin), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return string(out), code
}

// scrapeIn reads http://addr/metrics from inside ns and parses it with
// Prometheus's text parser.
func scrapeIn(t *testing.T, ns *netlab.Netns, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			c, err = net.DialTimeout(network, a, 5*time.Second)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	return metricstest.Get(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, "http://"+addr+"/metrics")
}

// TestWatchStatusRevokeMetrics: knockd on the raw backend in a namespace,
// its control socket the default one under $RUNTIME_DIRECTORY. After a
// knock, --status lists the opening (text and JSON), /metrics counts it
// and the packets, --revoke closes it with its stop command run once (and
// not again at shutdown), a second user is refused, and with no daemon
// --status exits 1.
func TestWatchStatusRevokeMetrics(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip", "setpriv")
	srv, cli := netlab.NewNetns(t, "watch-srv"), netlab.NewNetns(t, "watch-cli")
	veth := netlab.NewVeth(t, srv, cli, netlab.Addressing{NoIPv6: true})
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	cmds := filepath.Join(dir, "cmds")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[options]
	MetricsAddress = 127.0.0.1:9560
[openSSH]
	sequence = 7000,8000,9000
	seq_timeout = 10
	tcpflags = syn
	start_command = echo open %%IP%% >> %[1]s
	cmd_timeout = 3600
	stop_command = echo stop %%IP%% >> %[1]s
`, cmds))
	env := []string{"RUNTIME_DIRECTORY=" + run}
	cmd := srv.Command(knockdBin, "-c", conf, "-i", veth.A.Dev, "-v", "--backend", "raw", "--state-dir", filepath.Join(dir, "state"))
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	d := launch(t, cmd, "listening on")
	cli4, srv4 := veth.B.Addr.String(), veth.A.Addr.String()

	knockFrom(t, cli, knockBin, srv4, "7000", "8000", "9000")
	waitOutput(t, d, cli4+": openSSH: OPEN SESAME", 1)
	waitFile(t, cmds, "open "+cli4)

	// Text.
	out, code := ctlRun(t, nil, env, "-c", conf, "--status")
	if code != 0 {
		t.Fatalf("--status exited %d:\n%s", code, out)
	}
	line := regexp.MustCompile(`(?m)^openSSH +` + regexp.QuoteMeta(cli4) + ` +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(.*\) +(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \(in [^)]+\) +stop command: echo stop ` + regexp.QuoteMeta(cli4))
	m := line.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("--status does not list the opening of %s:\n%s", cli4, out)
	}
	due, err := time.ParseInLocation("2006-01-02 15:04:05", m[1], time.Local)
	if err != nil || due.Sub(time.Now()) < 3500*time.Second || due.Sub(time.Now()) > 3601*time.Second {
		t.Errorf("due time %q (%v): want about an hour from now", m[1], err)
	}
	for _, want := range []string{"raw backend", "openSSH  7000:tcp,8000:tcp,9000:tcp", "Openings: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("--status lacks %q:\n%s", want, out)
		}
	}

	// JSON.
	out, code = ctlRun(t, nil, env, "-c", conf, "--status", "--json")
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("--status --json exited %d (%v):\n%s", code, err, out)
	}
	if len(st.Openings) != 1 || st.Openings[0].Door != "openSSH" || st.Openings[0].Src != cli4 ||
		st.Openings[0].Until.Sub(st.Openings[0].Since) != time.Hour || st.Openings[0].Close != "stop command: echo stop "+cli4+" >> "+cmds {
		t.Errorf("JSON openings: %+v", st.Openings)
	}
	if st.Counters.PacketsSeen < 3 || st.Counters.Openings != 1 || st.Counters.Stages != 3 || st.Backend != "raw" {
		t.Errorf("JSON counters %+v, backend %q", st.Counters, st.Backend)
	}

	// Metrics, through Prometheus's parser.
	fams := scrapeIn(t, srv, "127.0.0.1:9560")
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
		max    float64
	}{
		{"knockd_openings_total", []string{"door", "openSSH"}, 1, 1},
		{"knockd_stages_total", []string{"door", "openSSH"}, 3, 3},
		{"knockd_pending_openings", []string{"door", "openSSH", "via", "command"}, 1, 1},
		{"knockd_packets_total", []string{"backend", "raw"}, 3, 1e9},
		{"knockd_packets_dropped_total", []string{"backend", "raw"}, 0, 0},
		{"knockd_attempts_in_progress", nil, 0, 0},
		{"knockd_commands_total", []string{"result", "started"}, 1, 1},
	} {
		if v, ok := metricstest.Value(fams, c.name, c.labels...); !ok || v < c.min || v > c.max {
			t.Errorf("%s%v = %v (present %v), want %v..%v", c.name, c.labels, v, ok, c.min, c.max)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Error("no Go runtime or process metrics")
	}

	// A second user: the socket's mode keeps it out; with the mode
	// opened, the peer check refuses it, and the daemon logs it.
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	sock := st.Socket
	if !strings.HasPrefix(sock, run+"/") || !strings.HasSuffix(sock, ".sock") {
		t.Errorf("the control socket is %q, want one under $RUNTIME_DIRECTORY %s", sock, run)
	}
	out, code = ctlRun(t, nobody, nil, "--control", sock, "--revoke", cli4)
	if code != 1 || !strings.Contains(out, "permission denied") {
		t.Errorf("uid 65534 on the 0600 socket: exit %d:\n%s", code, out)
	}
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	os.Chmod(run, 0o755)
	os.Chmod(sock, 0o666)
	out, code = ctlRun(t, nobody, nil, "--control", sock, "--revoke", cli4)
	if code != 1 || !strings.Contains(out, "refused: uid 65534 may not use this control socket") {
		t.Errorf("uid 65534 past the mode: exit %d:\n%s", code, out)
	}
	waitOutput(t, d, "control: refused a connection from uid 65534", 1)
	if n := strings.Count(readFile(t, cmds), "stop "); n != 0 {
		t.Errorf("the refused user's revoke ran %d stop commands", n)
	}

	// Revoke: nothing on another door, then the opening closes now.
	if out, code := ctlRun(t, nil, env, "-c", conf, "--revoke", cli4, "--door", "web"); code != 1 || !strings.Contains(out, "nothing to revoke") {
		t.Errorf("--revoke on another door: exit %d:\n%s", code, out)
	}
	out, code = ctlRun(t, nil, env, "-c", conf, "--revoke", cli4)
	if code != 0 || !strings.Contains(out, cli4+": openSSH: revoked") {
		t.Fatalf("--revoke exited %d:\n%s", code, out)
	}
	waitOutput(t, d, cli4+": openSSH: revoked", 1)
	waitFile(t, cmds, "stop "+cli4)
	if out, code := ctlRun(t, nil, env, "-c", conf, "--revoke", cli4); code != 1 || !strings.Contains(out, "nothing to revoke: "+cli4+" has no opening") {
		t.Errorf("a second --revoke: exit %d:\n%s", code, out)
	}
	fams = scrapeIn(t, srv, "127.0.0.1:9560")
	if v, ok := metricstest.Value(fams, "knockd_pending_openings", "door", "openSSH", "via", "command"); !ok || v != 0 {
		t.Errorf("pending openings after the revoke: %v (present %v), want 0", v, ok)
	}
	d.stop()
	if n := strings.Count(readFile(t, cmds), "stop "+cli4); n != 1 {
		t.Errorf("the stop command ran %d times, want once:\n%s", n, readFile(t, cmds))
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the control socket is left after shutdown (%v)", err)
	}
	if out, code := ctlRun(t, nil, env, "-c", conf, "--status"); code != 1 || !strings.Contains(out, "no knockd answers on "+sock) {
		t.Errorf("--status with no daemon: exit %d:\n%s", code, out)
	}
}

// TestWatchNotify: a fake $NOTIFY_SOCKET hears READY=1 once knockd
// listens, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a
// SIGHUP, and STOPPING=1 at SIGTERM.
func TestWatchNotify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := freePorts(t, 1)
	notify := filepath.Join(dir, "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recv := func(what string) string {
		t.Helper()
		l.SetReadDeadline(time.Now().Add(15 * time.Second))
		b := make([]byte, 4096)
		n, err := l.Read(b)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return string(b[:n])
	}
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf("[d]\n\tsequence = %d:udp\n\tstart_command = true\n", p[0]))
	cmd := exec.Command(knockdBin, "-c", conf, "-v", "--backend", "listener", "-i", "lo", "--control", filepath.Join(dir, "ctl.sock"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	d := launch(t, cmd, "")
	if got := recv("READY=1"); !strings.HasPrefix(got, "READY=1\nSTATUS=1 door(s) on lo (listener backend)") {
		t.Errorf("first message %q, want READY=1 with a status", got)
	}
	// Ready means listening: a knock counts at once.
	udpKnock(t, "127.0.0.1", p[0])
	d.waitLine("127.0.0.1: d: OPEN SESAME")

	d.cmd.Process.Signal(syscall.SIGHUP)
	if got := recv("RELOADING=1"); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+\n$`).MatchString(got) {
		t.Errorf("on SIGHUP %q, want RELOADING=1 and MONOTONIC_USEC", got)
	}
	if got := recv("READY=1 after the reload"); !strings.HasPrefix(got, "READY=1\n") {
		t.Errorf("after the reload %q, want READY=1", got)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if got := recv("STOPPING=1"); !strings.HasPrefix(got, "STOPPING=1\n") {
		t.Errorf("on SIGTERM %q, want STOPPING=1", got)
	}
	<-d.done
	if d.waited != nil {
		t.Errorf("knockd exited with %v:\n%s", d.waited, d.output())
	}
}

// TestWatchSetDoorRevoke: an nftables set door's opening shows in
// --status as closed by the kernel set, and --revoke deletes the element
// at once: the service is unreachable again long before Cmd_Timeout.
func TestWatchSetDoorRevoke(t *testing.T) {
	t.Parallel()
	l := newNFTLab(t)
	conf := filepath.Join(l.dir, "knockd.conf")
	writeFile(t, conf, `[openSSH]
	sequence = 7000,8000,9000
	seq_timeout = 5
	tcpflags = syn
	cmd_timeout = 600
	NFT_Set = inet knockd ssh4
`)
	sock := filepath.Join(l.dir, "control.sock")
	d := startIn(t, l.srv, l.dir, "listening on", knockdBin, "-c", conf, "-i", l.veth.A.Dev, "-v", "--backend", "raw", "--control", sock)
	srv4, cli4 := l.veth.A.Addr.String(), l.veth.B.Addr.String()
	service4 := net.JoinHostPort(srv4, fmt.Sprint(servicePort))
	startEcho(t, l.srv, servicePort)
	knockFrom(t, l.cli, knockBin, srv4, "7000", "8000", "9000")
	waitOutput(t, d, fmt.Sprintf("openSSH: adding %s to nft set inet knockd ssh4 for 600 s", cli4), 1)
	c := waitConnect(t, l.cli, service4, "after the knock")
	c.Close()

	out, code := ctlRun(t, nil, nil, "--control", sock, "--status", "--json")
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("--status --json exited %d (%v):\n%s", code, err, out)
	}
	if len(st.Openings) != 1 || st.Openings[0].Src != cli4 || st.Openings[0].Close != "nft set inet knockd ssh4" ||
		st.Openings[0].Until.Sub(st.Openings[0].Since) != 600*time.Second {
		t.Errorf("openings %+v: want %s's, closed by nft set inet knockd ssh4 after 600 s", st.Openings, cli4)
	}
	out, code = ctlRun(t, nil, nil, "--control", sock, "--revoke", cli4, "--door", "openSSH")
	if code != 0 || !strings.Contains(out, cli4+": openSSH: revoked (nft set inet knockd ssh4)") {
		t.Fatalf("--revoke exited %d:\n%s", code, out)
	}
	waitOutput(t, d, cli4+": openSSH: revoked", 1)
	waitOutput(t, d, fmt.Sprintf("openSSH: removing %s from nft set inet knockd ssh4", cli4), 1)
	waitNoConnect(t, l.cli, service4)
	if _, ok := expires(t, l, "ssh4", cli4); ok {
		t.Errorf("%s is still in the set after the revoke", cli4)
	}
}

// TestWatchNotifyWatchdog: with $WATCHDOG_USEC, knockd sends WATCHDOG=1
// (every half of it); with $WATCHDOG_PID naming another process, never.
func TestWatchNotifyWatchdog(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, pid string
		want      bool
	}{{"ours", "", true}, {"another process's", "1", false}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := freePorts(t, 1)
			notify := filepath.Join(dir, "notify")
			l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			conf := filepath.Join(dir, "knockd.conf")
			writeFile(t, conf, fmt.Sprintf("[d]\n\tsequence = %d:udp\n\tstart_command = true\n", p[0]))
			cmd := exec.Command(knockdBin, "-c", conf, "--backend", "listener", "-i", "lo", "--control", filepath.Join(dir, "ctl.sock"))
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify, "WATCHDOG_USEC=200000")
			if tt.pid != "" {
				cmd.Env = append(cmd.Env, "WATCHDOG_PID="+tt.pid)
			}
			launch(t, cmd, "")
			// Two keep-alives, however slow the machine (15 s at most);
			// none in 2 s, twenty periods of 100 ms, when they are not
			// ours to send.
			wait := 15 * time.Second
			if !tt.want {
				wait = 2 * time.Second
			}
			deadline := time.Now().Add(wait)
			got := 0
			b := make([]byte, 4096)
			for time.Now().Before(deadline) && (!tt.want || got < 2) {
				l.SetReadDeadline(deadline)
				n, err := l.Read(b)
				if err != nil {
					break
				}
				if strings.HasPrefix(string(b[:n]), "WATCHDOG=1\n") {
					got++
				}
			}
			if tt.want && got < 2 {
				t.Errorf("%d WATCHDOG=1 in 15 s with WATCHDOG_USEC=200000, want one every 100 ms", got)
			}
			if !tt.want && got != 0 {
				t.Errorf("%d WATCHDOG=1 with WATCHDOG_PID=%s, want none", got, tt.pid)
			}
		})
	}
}

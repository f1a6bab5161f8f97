package knockd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/klog/klogtest"
)

// syncBuffer is a bytes.Buffer the daemon's goroutines may write to while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testDaemon is a daemon run in the test's process, on the listener
// backend (no privileges needed).
type testDaemon struct {
	t              *testing.T
	dir, conf      string
	stdout, stderr syncBuffer
	reload         chan struct{}
	// stop ends the daemon and returns Run's error; the test's cleanup
	// calls it too.
	stop func() error
}

// runDaemon writes conf (a format with the door's UDP port as %[1]d and
// the test's directory as %[2]s) and runs the daemon until the test ends.
func runDaemon(t *testing.T, conf string, opts Options) *testDaemon {
	t.Helper()
	d := &testDaemon{t: t, dir: t.TempDir(), reload: make(chan struct{})}
	d.conf = filepath.Join(d.dir, "knockd.conf")
	d.write(conf)
	opts.ConfigPath = d.conf
	opts.Backend = "listener"
	opts.Verbose = true
	opts.Stdout, opts.Stderr = &d.stdout, &d.stderr
	opts.Reload = d.reload
	if opts.StateDir == "" && !strings.Contains(conf, "StateDir") {
		opts.StateDir = filepath.Join(d.dir, "state")
	}
	if opts.Control == "" && !strings.Contains(conf, "ControlSocket") {
		// Not the default, in /run/knockd for root: the test's own.
		opts.Control = filepath.Join(d.dir, "control.sock")
	}
	ready := make(chan error, 1)
	opts.Ready = func(err error) { ready <- err }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	var once sync.Once
	var runErr error
	d.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("the daemon did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if err := <-ready; err != nil {
		t.Fatalf("start-up: %v\n%s", err, d.stderr.String())
	}
	// serve's first line: the daemon now reads the sockets.
	deadline := time.Now().Add(15 * time.Second)
	for !serving.MatchString(d.stdout.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not start serving:\n%s\nstderr:\n%s", d.stdout.String(), d.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

// write replaces the configuration file, in one step (a reload may be
// reading it); %[1]d is the door's port and %[2]s the test's directory.
func (d *testDaemon) write(conf string) {
	d.t.Helper()
	if err := os.WriteFile(d.conf+".new", fmt.Appendf(nil, conf, d.port(), d.dir), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(d.conf+".new", d.conf); err != nil {
		d.t.Fatal(err)
	}
}

// port is a UDP port free on every address, the same for the whole test.
func (d *testDaemon) port() int {
	d.t.Helper()
	if p, ok := ports.Load(d.t.Name()); ok {
		return p.(int)
	}
	c, err := net.ListenPacket("udp", ":0")
	if err != nil {
		d.t.Fatal(err)
	}
	p := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	ports.Store(d.t.Name(), p)
	return p
}

var ports sync.Map

var serving = regexp.MustCompile(`(?m)^listening on \S+\.\.\.$|"msg":"listening on \S+\.\.\."`)

// sighup re-reads the configuration, as SIGHUP does, and waits until the
// daemon has.
func (d *testDaemon) sighup(conf string) {
	d.t.Helper()
	d.write(conf)
	line := "re-reading config file: " + d.conf + "\n"
	n := strings.Count(d.stdout.String(), line)
	d.reload <- struct{}{}
	// The reload is done once the daemon takes the next one, which reads
	// the same file and so changes nothing (or, if the test writes the
	// file again meanwhile, does the next reload's work early).
	d.reload <- struct{}{}
	d.waitCount(line, n+2)
}

func (d *testDaemon) waitCount(s string, n int) {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(d.stdout.String(), s) < n {
		if time.Now().After(deadline) {
			d.t.Fatalf("no %q (%d times) in the output:\n%s", s, n, d.stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *testDaemon) waitOut(s string, b *syncBuffer) {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			d.t.Fatalf("no %q in:\n%s\nstderr:\n%s", s, b.String(), d.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// knock sends one UDP knock from src to dst on the door's port.
func (d *testDaemon) knock(src, dst string) {
	d.t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP(dst), Port: d.port()})
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("knock")); err != nil {
		d.t.Fatal(err)
	}
}

// stage1 is the line of a first knock from src.
func stage1(src string) string { return src + ": d: Stage 1" }

// counted knocks from src to dst and tells whether the daemon counted it:
// a second knock, from marker to 127.0.0.1 (watched on lo as on any),
// follows it, and knocks are logged in the order they arrived.
func (d *testDaemon) counted(src, dst, marker string) bool {
	d.t.Helper()
	d.knock(src, dst)
	d.knock(marker, "127.0.0.1")
	d.waitOut(stage1(marker), &d.stdout)
	return strings.Contains(d.stdout.String(), stage1(src))
}

const door = `
[d]
	sequence = %[1]d:udp,%[1]d:udp,%[1]d:udp
	seq_timeout = 60
	command = true
`

func TestReloadSwitchesLogFile(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, "[options]\n\tLogFile = %[2]s/a.log\n"+door, Options{})
	a, b := filepath.Join(d.dir, "a.log"), filepath.Join(d.dir, "b.log")
	d.knock("127.0.0.3", "127.0.0.1")
	d.waitOut(stage1("127.0.0.3"), &d.stdout)
	d.sighup("[options]\n\tLogFile = %[2]s/b.log\n" + door)
	d.knock("127.0.0.4", "127.0.0.1")
	d.waitOut(stage1("127.0.0.4"), &d.stdout)

	la, _ := os.ReadFile(a)
	lb, _ := os.ReadFile(b)
	if !strings.Contains(string(la), stage1("127.0.0.3")) || strings.Contains(string(la), stage1("127.0.0.4")) {
		t.Errorf("a.log (the first LogFile):\n%s", la)
	}
	if !strings.Contains(string(lb), "] re-opening log file: "+b+"\n") || !strings.Contains(string(lb), stage1("127.0.0.4")) {
		t.Errorf("b.log (the LogFile after the reload):\n%s", lb)
	}
}

// -g wins over LogFile, on a reload as at start.
func TestReloadKeepsLogFileFlag(t *testing.T) {
	t.Parallel()
	g := filepath.Join(t.TempDir(), "g.log")
	d := runDaemon(t, door, Options{LogFile: g})
	d.sighup("[options]\n\tLogFile = %[2]s/b.log\n" + door)
	d.knock("127.0.0.3", "127.0.0.1")
	d.waitOut(stage1("127.0.0.3"), &d.stdout)
	lg, _ := os.ReadFile(g)
	if !strings.Contains(string(lg), stage1("127.0.0.3")) {
		t.Errorf("-g file after the reload:\n%s", lg)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "b.log")); err == nil {
		t.Errorf("LogFile of the file was opened although -g %s was given", g)
	}
	if want := "reload: LogFile ignored: -g " + g + " on the command line wins\n"; !strings.Contains(d.stderr.String(), want) {
		t.Errorf("stderr has no %q:\n%s", want, d.stderr.String())
	}
}

func TestUnopenableLogFileIsAWarning(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, "[options]\n\tLogFile = %[2]s/nodir/knockd.log\n"+door, Options{})
	want := "warning: cannot open logfile: No such file or directory: " + filepath.Join(d.dir, "nodir", "knockd.log")
	if !strings.HasPrefix(d.stderr.String(), want) {
		t.Errorf("stderr:\n%s\nwant it to start with %q", d.stderr.String(), want)
	}
	d.knock("127.0.0.3", "127.0.0.1")
	d.waitOut(stage1("127.0.0.3"), &d.stdout)
}

func TestReloadTurnsSyslogOnAndOff(t *testing.T) {
	t.Parallel()
	srv := klogtest.NewSyslog(t)
	d := runDaemon(t, door, Options{SyslogPath: srv.Path})
	withSyslog := "[options]\n\tUseSyslog\n" + door
	for i, conf := range []string{withSyslog, door, withSyslog} {
		d.sighup(conf)
		src := fmt.Sprintf("127.0.0.%d", 3+i)
		d.knock(src, "127.0.0.1")
		d.waitOut(stage1(src), &d.stdout)
	}
	var knocks []string
	for _, m := range srv.Until(t, stage1("127.0.0.5")) {
		if _, msg, _ := strings.Cut(m, " knockd: "); strings.HasPrefix(msg, "127.") {
			knocks = append(knocks, msg)
		}
	}
	if want := []string{stage1("127.0.0.3"), stage1("127.0.0.5")}; !slices.Equal(knocks, want) {
		t.Errorf("syslog received knock lines %q, want %q", knocks, want)
	}
}

// A changed Interface takes effect: lo watches 127.0.0.1 only, any (the
// default) every address, 127.0.0.2 among them.
func TestReloadFollowsInterface(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, "[options]\n\tInterface = lo\n"+door, Options{})
	if d.counted("127.0.0.3", "127.0.0.2", "127.0.0.4") {
		t.Fatalf("a knock to 127.0.0.2 was counted on lo:\n%s", d.stdout.String())
	}
	d.sighup(door)
	d.waitOut("reload: now listening on any\n", &d.stdout)
	if !d.counted("127.0.0.5", "127.0.0.2", "127.0.0.6") {
		t.Errorf("a knock to 127.0.0.2 was not counted after the reload to any:\n%s", d.stdout.String())
	}
	d.sighup("[options]\n\tInterface = lo\n" + door)
	d.waitOut("reload: now listening on lo\n", &d.stdout)
	if d.counted("127.0.0.7", "127.0.0.2", "127.0.0.8") {
		t.Errorf("a knock to 127.0.0.2 was counted after the reload back to lo:\n%s", d.stdout.String())
	}
}

// -i wins over Interface, on a reload as at start.
func TestReloadKeepsInterfaceFlag(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, door, Options{Interface: "lo"})
	d.sighup("[options]\n\tInterface = any\n" + door)
	if want := "reload: Interface ignored: -i lo on the command line wins\n"; !strings.Contains(d.stderr.String(), want) {
		t.Errorf("stderr has no %q:\n%s", want, d.stderr.String())
	}
	if d.counted("127.0.0.3", "127.0.0.2", "127.0.0.4") {
		t.Errorf("a knock to 127.0.0.2 was counted with -i lo:\n%s", d.stdout.String())
	}
}

// Keys that cannot change while running are named, one line each.
func TestReloadNamesFixedOptions(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, "[options]\n\tPidFile = %[2]s/a.pid\n\tStateDir = %[2]s/s1\n"+door, Options{Daemon: true, StateDir: ""})
	d.sighup("[options]\n\tPidFile = %[2]s/b.pid\n\tStateDir = %[2]s/s2\n" + door)
	want := "reload: PidFile cannot change while running; restart knockd to use " + filepath.Join(d.dir, "b.pid") + "\n" +
		"reload: StateDir cannot change while running; restart knockd to use " + filepath.Join(d.dir, "s2") + "\n"
	if got := d.stderr.String(); got != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "a.pid")); err != nil {
		t.Errorf("the pid file of the start: %v", err)
	}
	// Unchanged keys say nothing.
	d.sighup("[options]\n\tPidFile = %[2]s/b.pid\n\tStateDir = %[2]s/s2\n" + door)
	if got := d.stderr.String(); got != want {
		t.Errorf("stderr after a reload with no change:\n%s\nwant:\n%s", got, want)
	}
}

func TestReloadNamesFixedWatchOptions(t *testing.T) {
	t.Parallel()
	d := runDaemon(t, "[options]\n\tMetricsAddress = 127.0.0.1:0\n"+door, Options{})
	d.sighup("[options]\n\tMetricsAddress = 127.0.0.1:9\n\tControlSocket = %[2]s/other.sock\n" + door)
	want := "reload: MetricsAddress cannot change while running; restart knockd to use 127.0.0.1:9\n"
	if got := d.stderr.String(); got != want {
		t.Errorf("stderr:\n%s\nwant (ControlSocket is set by the flag, which wins):\n%s", got, want)
	}
}

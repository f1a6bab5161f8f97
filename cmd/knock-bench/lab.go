//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// nsPrefix starts the names of the namespaces this command creates; the
// pid of the run follows it, so leftovers of a killed run can be told
// from namespaces of a run still going.
const nsPrefix = "kbench"

var (
	clientAddr  = netip.MustParseAddr("198.18.0.1")
	serverAddr  = netip.MustParseAddr("198.18.0.2")
	clientAddr6 = netip.MustParseAddr("2001:db8::1")
	serverAddr6 = netip.MustParseAddr("2001:db8::2")
)

// lab is two namespaces, client and server, joined by a veth pair.
type lab struct {
	client, server *netlab.Netns
	veth           *netlab.Veth
	serverMAC      net.HardwareAddr
}

// removeStale deletes the namespaces that a killed run of this command
// left behind: those whose creator's pid no longer runs.
func removeStale() {
	ents, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		// kbench-c-PID-SEQ-RAND
		f := strings.Split(e.Name(), "-")
		if len(f) != 5 || f[0] != nsPrefix {
			continue
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: removing stale namespace %s: %v: %s\n", e.Name(), err, out)
		}
	}
}

func newLab() (_ *lab, err error) {
	l := &lab{}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.close())
		}
	}()
	if l.client, err = netlab.CreateNetns(nsPrefix + "-c"); err != nil {
		return nil, err
	}
	if l.server, err = netlab.CreateNetns(nsPrefix + "-s"); err != nil {
		return nil, err
	}
	l.veth, err = netlab.CreateVeth(l.client, l.server, netlab.Addressing{A: clientAddr, B: serverAddr, A6: clientAddr6, B6: serverAddr6})
	if err != nil {
		return nil, err
	}
	err = l.server.Do(func() error {
		ifi, err := net.InterfaceByName(l.veth.B.Dev)
		if err != nil {
			return err
		}
		l.serverMAC = ifi.HardwareAddr
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// close deletes the namespaces, and with them the veth pair.
func (l *lab) close() error {
	var errs []error
	for _, n := range []*netlab.Netns{l.client, l.server} {
		if n != nil {
			errs = append(errs, n.Delete())
		}
	}
	l.client, l.server = nil, nil
	return errors.Join(errs...)
}

// linkStats are a device's receive counters.
type linkStats struct {
	packets, dropped uint64
}

// rxStats reads the receive counters of the server's end of the pair.
func (l *lab) rxStats() (linkStats, error) {
	out, err := l.server.TryIP("-s", "-j", "link", "show", "dev", l.veth.B.Dev)
	if err != nil {
		return linkStats{}, err
	}
	var v []struct {
		Stats64 struct {
			Rx struct {
				Packets uint64 `json:"packets"`
				Dropped uint64 `json:"dropped"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		return linkStats{}, fmt.Errorf("parsing ip -s -j link: %v: %s", err, out)
	}
	return linkStats{v[0].Stats64.Rx.Packets, v[0].Stats64.Rx.Dropped}, nil
}

// proc is a daemon running in the server namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	err  error // Wait's, valid once done is closed

	stopOnce sync.Once
}

// startProc starts bin in ns, in a process group of its own (so that a
// ^C at the terminal reaches this command only, which then stops it), and
// killed if this command dies. Its output goes to the file out, its
// standard output to watch too when watch is not nil.
// With cpu >= 0 it runs on that CPU only (taskset, which execs it: the
// pid is the daemon's). environ adds to this command's environment;
// wrap, when not empty, is a command and its flags that bin runs under
// (valgrind, which runs it in the same process: the pid is still the
// daemon's).
func startProc(ns *netlab.Netns, name, out string, watch io.Writer, cpu int, environ, wrap []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	if len(wrap) > 0 {
		args = append(append(wrap[1:len(wrap):len(wrap)], bin), args...)
		bin = wrap[0]
	}
	if cpu >= 0 {
		args = append([]string{"-c", strconv.Itoa(cpu), bin}, args...)
		bin = "taskset"
	}
	cmd := ns.Command(bin, args...)
	if len(environ) > 0 {
		cmd.Env = append(os.Environ(), environ...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if watch != nil {
		// Through a pipe that this command reads: commands the daemon
		// started may hold it open after the daemon is gone.
		cmd.Stdout = io.MultiWriter(f, watch)
		cmd.WaitDelay = 2 * time.Second
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the daemon with SIGTERM, then SIGKILL after 10 s, and the
// rest of its process group (start commands still running). It is
// idempotent.
func (p *proc) stop() {
	p.stopOnce.Do(func() {
		if !p.exited() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				fmt.Fprintf(os.Stderr, "bench: %s did not stop within 10 s of SIGTERM: killing it\n", p.name)
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		syscall.Kill(-p.pid, syscall.SIGKILL)
	})
}

// fifo receives the lines the latency door's start command writes, and
// stamps each as it arrives.
type fifo struct {
	f     *os.File
	lines chan fifoLine
	wg    sync.WaitGroup
}

// fifoLine is a line that came through the FIFO, and when.
type fifoLine struct {
	at   time.Time
	text string
}

func openFIFO(path string) (*fifo, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo %s: %w", path, err)
	}
	// Open for reading and writing: the open does not wait for a writer,
	// and the reader never sees end-of-file between two commands.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	q := &fifo{f: f, lines: make(chan fifoLine, 4096)}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		r := bufio.NewReader(f)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			select {
			case q.lines <- fifoLine{time.Now(), strings.TrimSpace(line)}:
			default:
			}
		}
	}()
	return q, nil
}

// drain forgets the lines received so far.
func (q *fifo) drain() {
	for {
		select {
		case <-q.lines:
		default:
			return
		}
	}
}

// wait returns the time of the next line, or false after timeout.
func (q *fifo) wait(ctx context.Context, timeout time.Duration) (time.Time, bool) {
	l, ok := q.next(ctx, timeout)
	return l.at, ok
}

// next returns the next line, or false after timeout.
func (q *fifo) next(ctx context.Context, timeout time.Duration) (fifoLine, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l := <-q.lines:
		return l, true
	case <-t.C:
	case <-ctx.Done():
	}
	return fifoLine{}, false
}

// lineWatcher reads a daemon's -v output as it comes: it stamps the first
// OPEN SESAME line of each source on each door, and counts the lines
// about the doors it is told to count.
type lineWatcher struct {
	mu      sync.Mutex
	partial []byte
	sesame  map[string]time.Time // "IP: door" → when its OPEN SESAME came
	count   map[string]int       // a door, "door open" / "door cmd" → lines
	counted map[string]bool      // the doors whose lines are counted
}

func newLineWatcher(doors ...string) *lineWatcher {
	w := &lineWatcher{sesame: map[string]time.Time{}, count: map[string]int{}, counted: map[string]bool{}}
	for _, d := range doors {
		w.counted[d] = true
	}
	return w
}

func (w *lineWatcher) Write(b []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]), now)
		w.partial = w.partial[i+1:]
	}
	w.partial = slices.Clip(w.partial)
	return len(b), nil
}

// line takes one line: "IP: door: OPEN SESAME" (knockd 0.8 and ours
// alike), "door: running command: CMD".
func (w *lineWatcher) line(l string, at time.Time) {
	if who, ok := strings.CutSuffix(l, ": OPEN SESAME"); ok {
		if _, seen := w.sesame[who]; !seen {
			w.sesame[who] = at
		}
		if _, door, ok := cutLast(who, ": "); ok && w.counted[door] {
			w.count[door+" open"]++
		}
		return
	}
	if door, _, ok := strings.Cut(l, ": running command: "); ok && w.counted[door] {
		w.count[door+" cmd"]++
	}
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// openedAt returns when src's OPEN SESAME on door came.
func (w *lineWatcher) openedAt(src, door string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.sesame[src+": "+door]
	return t, ok
}

// counts returns the OPEN SESAME and running command lines of door so
// far.
func (w *lineWatcher) counts(door string) (open, cmd int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count[door+" open"], w.count[door+" cmd"]
}

func (q *fifo) Close() error {
	err := q.f.Close()
	q.wg.Wait()
	return err
}

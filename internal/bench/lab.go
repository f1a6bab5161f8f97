//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
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
	clientAddr = netip.MustParseAddr("198.18.0.1")
	serverAddr = netip.MustParseAddr("198.18.0.2")
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
	l.veth, err = netlab.CreateVeth(l.client, l.server, netlab.Addressing{A: clientAddr, B: serverAddr, NoIPv6: true})
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
// killed if this command dies.
// With cpu >= 0 it runs on that CPU only (taskset, which execs it: the
// pid is the daemon's).
func startProc(ns *netlab.Netns, name, out string, cpu int, bin string, args ...string) (*proc, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if cpu >= 0 {
		args = append([]string{"-c", strconv.Itoa(cpu), bin}, args...)
		bin = "taskset"
	}
	cmd := ns.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
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
	lines chan time.Time
	wg    sync.WaitGroup
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
	q := &fifo{f: f, lines: make(chan time.Time, 4096)}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		r := bufio.NewReader(f)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			select {
			case q.lines <- time.Now():
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
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case at := <-q.lines:
		return at, true
	case <-t.C:
	case <-ctx.Done():
	}
	return time.Time{}, false
}

func (q *fifo) Close() error {
	err := q.f.Close()
	q.wg.Wait()
	return err
}

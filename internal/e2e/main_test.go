package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of the binaries built once for all tests.
var knockdBin, knockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "knock-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // so an unprivileged user can run the binaries
	knockdBin, knockBin = filepath.Join(dir, "knockd"), filepath.Join(dir, "knock")
	for bin, pkg := range map[string]string{knockdBin: "../../cmd/knockd", knockBin: "../../cmd/knock"} {
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePorts returns n distinct ports that are free for TCP and UDP on
// loopback right now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		held = append(held, u)
		ports = append(ports, p)
	}
	return ports
}

// daemon is a running knockd (ours or Debian's).
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
	waited error
}

// startDaemon runs knockd with args and waits until it is listening.
func startDaemon(t *testing.T, prefix []string, args ...string) *daemon {
	t.Helper()
	argv := append(append([]string{}, prefix...), knockdBin)
	argv = append(argv, args...)
	d := launch(t, exec.Command(argv[0], argv[1:]...), "")
	d.waitReady()
	return d
}

// waitReady waits for the daemon's own "listening on IFACE..." line,
// which it writes once its capture has opened every socket: a backend's
// "listener: listening on ADDR" lines come one per socket, and a knock
// sent after the first of them may reach a port not yet bound.
func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, line := range strings.Split(d.output(), "\n") {
			if strings.Contains(line, "listening on ") && strings.Contains(line, "...") {
				return
			}
		}
		select {
		case <-d.done:
			d.t.Fatalf("knockd exited before it was listening (%v):\n%s", d.waited, d.output())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("knockd did not say it was listening within 30 s:\n%s", d.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// launch starts cmd, collecting its output, and waits until the output
// contains ready (when not empty). The process is stopped (SIGINT) when
// the test ends.
func launch(t *testing.T, cmd *exec.Cmd, ready string) *daemon {
	t.Helper()
	d := &daemon{t: t, cmd: cmd, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		d.waited = cmd.Wait()
		pw.Close()
		close(d.done)
	}()
	t.Cleanup(d.stop)
	if ready != "" {
		waitOutput(t, d, ready, 1)
	}
	return d
}

// waitLine waits until the output contains s.
func (d *daemon) waitLine(s string) {
	d.t.Helper()
	waitOutput(d.t, d, s, 1)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// stop sends SIGTERM and waits for the exit.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("knockd did not stop on SIGINT:\n%s", d.output())
	}
}

// knock runs a knock client and fails the test if it fails.
func knock(t *testing.T, client string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, client, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", client, strings.Join(args, " "), err, out)
	}
}

// waitFile waits until the file at path contains want.
func waitFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q; it has:\n%s", path, want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readFile returns the file's content, "" for a file that does not
// exist (yet).
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lockedBuffer collects a daemon's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startDaemon starts path as knockd with args and stops it, by its pid,
// when the test ends.
func startDaemon(t *testing.T, path string, env, args []string) *lockedBuffer {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Args[0] = "knockd"
	cmd.Env = append(os.Environ(), env...)
	out := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return out
}

// waitFor waits, within a bound, until out holds s.
func waitFor(t *testing.T, what string, out *lockedBuffer, s string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(out.String(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("%s never printed %q; output:\n%s", what, s, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// doorLines are the lines of out about the door's knocks and command.
func doorLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "127.0.0.1: door: ") || strings.HasPrefix(l, "door: running command: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestCompatKnockd08Live runs Debian's knockd 0.8 and ours side by side
// on the loopback interface, each started with the same command line in
// one of the getopt forms, knocks once, and compares what each prints
// for the door: the forms must reach -v, -i and -c as 0.8 reads them.
func TestCompatKnockd08Live(t *testing.T) {
	const path = "/usr/sbin/knockd"
	if _, err := exec.LookPath(path); err != nil {
		t.Skipf("knockd 0.8 is not installed at %s", path)
	}
	if os.Geteuid() != 0 {
		t.Skip("knockd 0.8 needs root to capture on lo")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for i, form := range []string{
		"-vilo -c{c}",
		"--verb --inter=lo --conf {c}",
		"-c {c} stray -i lo -v",
		"-4vc{c} --interface lo",
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			// Ports of their own, so that other tests' traffic on lo
			// does not reach the door.
			udp, tcp := 40000+rand.IntN(10000), 50000+rand.IntN(10000)
			conf := filepath.Join(dir, "knockd.conf")
			text := fmt.Sprintf("[options]\n[door]\nsequence = %d:udp,%d:tcp\nseq_timeout = 10\ncommand = /bin/true %%IP%%\n", udp, tcp)
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			args := strings.Fields(strings.ReplaceAll(form, "{c}", conf))
			want := startDaemon(t, path, nil, args)
			got := startDaemon(t, self, []string{"KNOCKD_TEST_MAIN=1", "STATE_DIRECTORY=" + dir}, args)
			waitFor(t, "knockd 0.8", want, "listening on lo...")
			waitFor(t, "our knockd", got, "listening on lo...")

			c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udp))
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{0})
			c.Close()
			time.Sleep(50 * time.Millisecond) // keep the knocks in order
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tcp), time.Second); err == nil {
				c.Close()
			}
			waitFor(t, "knockd 0.8", want, "door: running command: ")
			waitFor(t, "our knockd", got, "door: running command: ")
			wantLines := []string{
				"127.0.0.1: door: Stage 1",
				"127.0.0.1: door: Stage 2",
				"127.0.0.1: door: OPEN SESAME",
				"door: running command: /bin/true 127.0.0.1",
			}
			if diff := cmp.Diff(wantLines, doorLines(want.String())); diff != "" {
				t.Fatalf("knockd 0.8 %s (-expected +printed):\n%s", form, diff)
			}
			if diff := cmp.Diff(doorLines(want.String()), doorLines(got.String())); diff != "" {
				t.Errorf("knockd %s (-knockd 0.8 +ours):\n%s\nours printed:\n%s", form, diff, got)
			}
			if form == "-c {c} stray -i lo -v" && !strings.Contains(got.String(), `knockd: warning: ignoring argument "stray"`) {
				t.Errorf("knockd %s: no warning for the operand:\n%s", form, got)
			}
		})
	}
}

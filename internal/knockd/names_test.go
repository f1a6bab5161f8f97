package knockd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// safety bounds every wait; reaching it is a failure, never a pass.
const safety = 10 * time.Second

// stuckResolver never answers until released, and ignores its context,
// like a resolver behind a dead link in the worst case.
type stuckResolver struct {
	release chan struct{}
	mu      sync.Mutex
	asked   []string
}

func newStuckResolver(t *testing.T) *stuckResolver {
	r := &stuckResolver{release: make(chan struct{})}
	t.Cleanup(func() { close(r.release) })
	return r
}

func (r *stuckResolver) lookup(ctx context.Context, addr string) ([]string, error) {
	r.mu.Lock()
	r.asked = append(r.asked, addr)
	r.mu.Unlock()
	<-r.release
	return nil, errors.New("no answer")
}

// within runs f and fails the test if it does not return within safety.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(safety):
		t.Fatalf("%s did not return", what)
	}
}

func TestLabelNeverWaitsForDNS(t *testing.T) {
	r := newStuckResolver(t)
	n := newNames(true, r.lookup)
	defer n.close()
	within(t, "label with a resolver that does not answer", func() {
		for i := range 2 * maxNames {
			ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
			if got := n.label(ip); got != ip.String() {
				t.Errorf("label(%s) = %q, want the address alone", ip, got)
				return
			}
		}
	})
	if got := len(n.queue); got > lookupQueue {
		t.Errorf("%d lookups queued, more than the bound %d", got, lookupQueue)
	}
}

func TestLabelShowsTheNameOnceKnown(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.1")
	n := newNames(true, func(ctx context.Context, addr string) ([]string, error) {
		if addr != ip.String() {
			return nil, fmt.Errorf("asked for %s", addr)
		}
		return []string{"knocker.example."}, nil
	})
	defer n.close()
	if got := n.label(ip); got != "198.18.0.1" {
		t.Errorf("first label = %q, want the address alone", got)
	}
	want := "198.18.0.1 (knocker.example)"
	for deadline := time.Now().Add(safety); n.label(ip) != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("label = %q, want %q", n.label(ip), want)
		}
	}
	if got := newNames(false, nil).label(ip); got != "198.18.0.1" {
		t.Errorf("label without -l = %q", got)
	}
}

// With -l and a resolver that never answers, a knock's command still runs
// and shutdown is prompt: knockd 0.8, and ours before, waited for the
// lookup on the action path (2 s per new name, 3 minutes of backlog after
// SIGTERM in one run).
func TestLookupDelaysNothing(t *testing.T) {
	dir := t.TempDir()
	r := newStuckResolver(t)
	var port int
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		conf := filepath.Join(dir, "knockd.conf")
		text := fmt.Sprintf("[d]\nsequence = %d\nstart_command = touch %s/opened\n", port, dir)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		ready := make(chan error, 1)
		go func() {
			errc <- Run(ctx, Options{
				ConfigPath: conf, Backend: "listener", StateDir: filepath.Join(dir, "state"),
				Interface: "lo", IPv4Only: true, Lookup: true, Verbose: true,
				Stdout: &out, Stderr: &out, lookupAddr: r.lookup,
				Ready: func(err error) { ready <- err },
			})
		}()
		err = <-ready
		if err == nil {
			break
		}
		<-errc
		if !errors.Is(err, syscall.EADDRINUSE) || try == 10 {
			t.Fatalf("start: %v\n%s", err, out.String())
		}
	}

	c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), safety)
	if err == nil {
		c.Close()
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(safety); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "opened")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the start command did not run while the lookup hung:\n%s", out.String())
		}
	}
	if !strings.Contains(out.String(), "127.0.0.1: d: OPEN SESAME") {
		t.Errorf("no OPEN SESAME line with the address alone:\n%s", out.String())
	}
	for deadline := time.Now().Add(safety); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		asked := len(r.asked)
		r.mu.Unlock()
		if asked > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resolver was never asked")
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(safety):
		t.Fatalf("shutdown waited for the lookup:\n%s", out.String())
	}
}

package netlab_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
	"golang.org/x/sys/unix"
)

// isolateDirEnv names the directory the isolated run of TestIsolate and
// TestIsolateHelper reports to; their outer run sets it.
const isolateDirEnv = "NETLAB_TEST_ISOLATE_DIR"

func netnsInode(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestIsolate checks that the isolated run happens in another namespace,
// that what it creates there is not here, and that the namespace is gone
// after the test.
func TestIsolate(t *testing.T) {
	netlab.Require(t)
	dir := os.Getenv(isolateDirEnv)
	if netlab.IsolatedNetns() == "" {
		dir = t.TempDir()
		t.Setenv(isolateDirEnv, dir)
		// Registered first, so it runs after Isolate's own cleanup.
		t.Cleanup(func() {
			b, err := os.ReadFile(filepath.Join(dir, "report"))
			if err != nil {
				return // reported below
			}
			ns := strings.Fields(string(b))[0]
			if _, err := os.Stat("/var/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("namespace %s still there after the test: %v", ns, err)
			}
		})
	}
	if !netlab.Isolate(t) {
		b, err := os.ReadFile(filepath.Join(dir, "report"))
		if err != nil {
			t.Fatalf("the isolated run wrote no report: %v", err)
		}
		var ns, dev string
		var ino uint64
		if _, err := fmt.Sscan(string(b), &ns, &ino, &dev); err != nil {
			t.Fatalf("report %q: %v", b, err)
		}
		if ino == netnsInode(t) {
			t.Errorf("the isolated run was in this namespace (inode %d)", ino)
		}
		if ifi, err := net.InterfaceByName(dev); err == nil {
			t.Errorf("the isolated run's device %s is in this namespace: %+v", dev, ifi)
		}
		return
	}
	if dir == "" {
		t.Fatalf("%s is not set in the isolated run", isolateDirEnv)
	}
	ns := netlab.IsolatedNetns()
	if _, err := os.Stat("/var/run/netns/" + ns); err != nil {
		t.Errorf("the namespace the run is in: %v", err)
	}
	dev := fmt.Sprintf("nli%d", rand.Uint32()%1e9)
	if out, err := exec.Command("ip", "link", "add", dev, "type", "veth", "peer", "name", dev+"p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	if _, err := net.InterfaceByName(dev); err != nil {
		t.Fatal(err)
	}
	report := fmt.Sprintf("%s %d %s\n", ns, netnsInode(t), dev)
	if err := os.WriteFile(filepath.Join(dir, "report"), []byte(report), 0o600); err != nil {
		t.Fatal(err)
	}
}

// isolateModeEnv tells TestIsolateHelper what to do.
const isolateModeEnv = "NETLAB_TEST_ISOLATE_MODE"

// TestIsolateHelper is run by TestIsolateOutcomes only.
func TestIsolateHelper(t *testing.T) {
	mode := os.Getenv(isolateModeEnv)
	if mode == "" {
		t.Skip("run by TestIsolateOutcomes only")
	}
	if !netlab.Isolate(t) {
		return
	}
	switch mode {
	case "fail":
		t.Fatal("deliberate failure")
	case "skip":
		t.Skip("deliberate skip")
	case "crash":
		// Killed before its cleanups: the namespace it made is left.
		ns := netlab.NewNetns(t, "nlcrash")
		if err := os.WriteFile(filepath.Join(os.Getenv(isolateDirEnv), "netns"), []byte(ns.Name()), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Exit(3)
	case "subtests":
		t.Run("a", func(t *testing.T) { t.Log("subtest a ran") })
		t.Run("b", func(t *testing.T) { t.Log("subtest b ran") })
	}
}

// TestIsolateOutcomes checks that a failure, a skip and a crash of the
// isolated run are the test's, and that the run's own -test.run still
// selects subtests.
func TestIsolateOutcomes(t *testing.T) {
	netlab.Require(t)
	if netlab.IsolatedNetns() != "" {
		t.Skip("not inside an isolated run")
	}
	for _, c := range []struct {
		mode, run string
		fails     bool
		want      []string
		not       []string
	}{
		{mode: "fail", fails: true, want: []string{"deliberate failure", "--- FAIL: TestIsolateHelper ("}},
		{mode: "skip", want: []string{"deliberate skip", "--- SKIP: TestIsolateHelper ("}},
		{mode: "crash", fails: true, want: []string{"--- FAIL: TestIsolateHelper (", "left by the test's run"}},
		{mode: "subtests", run: "TestIsolateHelper/b", want: []string{"subtest b ran", "--- PASS: TestIsolateHelper ("}, not: []string{"subtest a ran"}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			dir := t.TempDir()
			run := c.run
			if run == "" {
				run = "^TestIsolateHelper$"
			}
			cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), isolateModeEnv+"="+c.mode, isolateDirEnv+"="+dir)
			cmd.WaitDelay = time.Second
			b, err := cmd.CombinedOutput()
			out := string(b)
			if (err != nil) != c.fails {
				t.Errorf("run failed: %v, want failed %v", err, c.fails)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in the output", w)
				}
			}
			for _, w := range c.not {
				if strings.Contains(out, w) {
					t.Errorf("%q in the output", w)
				}
			}
			if c.mode == "crash" {
				ns, err := os.ReadFile(filepath.Join(dir, "netns"))
				if err != nil {
					t.Fatalf("the crashed run wrote no namespace name: %v", err)
				}
				if _, err := os.Stat("/var/run/netns/" + string(ns)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("namespace %s, left by the crashed run, still there: %v", ns, err)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// TestSelf makes a bridge through netlab in the namespace Isolate runs
// the test in, and finds it with this process's own sockets.
func TestSelf(t *testing.T) {
	netlab.Require(t)
	if !netlab.Isolate(t) {
		return
	}
	s := netlab.Self(t)
	if s.Name() != netlab.IsolatedNetns() || netlab.Self(t) != s {
		t.Fatalf("Self = %s, then another; want %s each time", s, netlab.IsolatedNetns())
	}
	br := netlab.NewBridge(t, s, "")
	if _, err := net.InterfaceByName(br); err != nil {
		t.Fatalf("the bridge %s, made in %s: %v", br, s, err)
	}
}

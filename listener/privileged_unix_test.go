//go:build unix

package listener

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// lowPort is below net.ipv4.ip_unprivileged_port_start (1024 unless
// changed); binding it needs CAP_NET_BIND_SERVICE. The kernel checks
// permission before it looks whether the port is in use.
const lowPort = 7

func TestPrivilegedPort(t *testing.T) {
	t.Parallel()
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n <= lowPort {
			t.Skipf("net.ipv4.ip_unprivileged_port_start = %d: anyone may bind port %d", n, lowPort)
		}
	}
	if os.Geteuid() == 0 {
		rerunAsNobody(t)
		return
	}
	_, err := New(capture.Spec{Ports: []capture.Port{port(wire.TCP, lowPort, "openSSH")}}, Options{})
	if !errors.Is(err, os.ErrPermission) || !errors.Is(err, syscall.EACCES) {
		t.Fatalf("New: %v, want permission denied", err)
	}
	t.Log(err)
	for _, want := range []string{"door openSSH: tcp port 7 on 0.0.0.0", "CAP_NET_BIND_SERVICE", "setcap cap_net_bind_service+ep", "--backend raw"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// rerunAsNobody runs TestPrivilegedPort in a copy of the test binary as
// user nobody, which has no capabilities.
func rerunAsNobody(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary: %v", err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Skipf("cannot read the test binary: %v", err)
	}
	// Not t.TempDir: its parent is private to root.
	dir, err := os.MkdirTemp("", "listener-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "listener.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPrivilegedPort$", "-test.v")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	outb, err := cmd.CombinedOutput()
	output := string(outb)
	switch {
	case err != nil && strings.Contains(output, "--- FAIL"):
		t.Fatalf("as nobody:\n%s", output)
	case err != nil:
		t.Skipf("cannot run the test as nobody (%v):\n%s", err, output)
	case strings.Contains(output, "--- SKIP"):
		t.Skipf("skipped as nobody:\n%s", output)
	case !strings.Contains(output, "--- PASS: TestPrivilegedPort"):
		t.Fatalf("as nobody, unexpected output:\n%s", output)
	}
	t.Logf("passed as nobody:\n%s", output)
}

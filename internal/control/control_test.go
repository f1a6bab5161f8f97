package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/klog/klogtest"
)

type fakeHandler struct {
	mu      sync.Mutex
	revokes []string
}

func (h *fakeHandler) Status() *Status {
	return &Status{PID: 42, Backend: "fake", Openings: []Opening{{Door: "ssh", Src: "198.18.0.2", Close: "stop command: x"}}}
}

func (h *fakeHandler) Revoke(src netip.Addr, door string) []Opening {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revokes = append(h.revokes, src.String()+" "+door)
	if src.String() == "198.18.0.2" {
		return []Opening{{Door: "ssh", Src: src.String()}}
	}
	return nil
}

func serve(t *testing.T, path string) (*Server, *fakeHandler, *klogtest.Lines) {
	t.Helper()
	lb := &klogtest.Lines{}
	s, err := Listen(path, lb.Logf)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHandler{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, h); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return s, h, lb
}

func skipUnsupported(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the control socket is Linux only")
	}
}

func TestStatusAndRevoke(t *testing.T) {
	skipUnsupported(t)
	t.Parallel()
	path := filepath.Join(t.TempDir(), "run", "k.sock")
	_, h, _ := serve(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("socket mode %o, want 600", m)
	}
	resp, err := Ask(path, Request{Cmd: CmdStatus})
	if err != nil || resp.Error != "" || resp.Status == nil || resp.Status.PID != 42 || len(resp.Status.Openings) != 1 {
		t.Fatalf("status: %+v, %v", resp, err)
	}
	resp, err = Ask(path, Request{Cmd: CmdRevoke, Src: "198.18.0.2", Door: "ssh"})
	if err != nil || resp.Error != "" || len(resp.Revoked) != 1 {
		t.Errorf("revoke: %+v, %v", resp, err)
	}
	resp, err = Ask(path, Request{Cmd: CmdRevoke, Src: "198.18.0.9"})
	if err != nil || !strings.Contains(resp.Error, "nothing to revoke: 198.18.0.9 has no opening") {
		t.Errorf("revoke of nothing: %+v, %v", resp, err)
	}
	resp, err = Ask(path, Request{Cmd: CmdRevoke, Src: "nonsense"})
	if err != nil || !strings.Contains(resp.Error, `"nonsense" is not an IP address`) {
		t.Errorf("revoke of nonsense: %+v, %v", resp, err)
	}
	if got := strings.Join(h.revokes, ","); got != "198.18.0.2 ssh,198.18.0.9 " {
		t.Errorf("revokes = %q", got)
	}
}

func TestGarbageAndSilence(t *testing.T) {
	skipUnsupported(t)
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.sock")
	serve(t, path)
	for _, in := range []string{"", "{", "[]", `{"cmd":"reboot"}`, `{"cmd":"status"}{"cmd":"status"}`, `{"cmd":"status","x":1}`, strings.Repeat(" ", MaxRequest+10)} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(in))
		c.(*net.UnixConn).CloseWrite()
		var resp Response
		err = json.NewDecoder(c).Decode(&resp)
		c.Close()
		if err != nil || resp.Error == "" {
			t.Errorf("request %.20q: response %+v, %v; want an error", in, resp, err)
		}
	}
	// A peer that sends nothing and never closes is dropped after
	// Timeout; meanwhile others are served.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if resp, err := Ask(path, Request{Cmd: CmdStatus}); err != nil || resp.Status == nil {
		t.Errorf("status beside an idle peer: %+v, %v", resp, err)
	}
	idle.SetReadDeadline(time.Now().Add(3 * Timeout))
	var resp Response
	if err := json.NewDecoder(idle).Decode(&resp); err != nil || !strings.Contains(resp.Error, "reading the request") {
		t.Errorf("idle peer got %+v, %v; want an error for its silence", resp, err)
	}
}

func TestStaleLiveAndForeign(t *testing.T) {
	skipUnsupported(t)
	t.Parallel()
	dir := t.TempDir()

	// A socket left by a dead daemon is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Ask(stale, Request{Cmd: CmdStatus}); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("Ask on a stale socket: %v, want ErrNoDaemon", err)
	}
	serve(t, stale)
	if resp, err := Ask(stale, Request{Cmd: CmdStatus}); err != nil || resp.Status == nil {
		t.Errorf("status on the replaced socket: %+v, %v", resp, err)
	}

	// A live one is an error, and stays.
	if _, err := Listen(stale, nil); !errors.Is(err, ErrAnswering) || !strings.Contains(err.Error(), "another knockd is answering on "+stale) {
		t.Errorf("Listen on a live socket: %v", err)
	}
	if resp, err := Ask(stale, Request{Cmd: CmdStatus}); err != nil || resp.Status == nil {
		t.Errorf("the first daemon's socket after a second Listen: %+v, %v", resp, err)
	}

	// A file that is not a socket is never removed.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("keep"), 0o600)
	if _, err := Listen(plain, nil); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen on a plain file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Error("the plain file was changed")
	}

	if _, err := Ask(filepath.Join(dir, "none.sock"), Request{Cmd: CmdStatus}); !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "there is no socket there") {
		t.Errorf("Ask on no socket: %v", err)
	}
}

// TestOtherUserRefused connects as uid 65534 (the test binary run again
// as nobody) to a socket whose mode would let it in: the peer check must
// refuse it, and log it.
func TestOtherUserRefused(t *testing.T) {
	skipUnsupported(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root, to connect as another user")
	}
	dir, err := os.MkdirTemp("", "control-peer-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "k.sock")
	_, h, lb := serve(t, path)
	os.Chmod(path, 0o666) // so that only the peer check stands in the way
	// The test binary, where nobody may run it.
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "control.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperAsk$")
	cmd.Env = append(os.Environ(), "CONTROL_HELPER_SOCKET="+path)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "refused: uid 65534 may not use this control socket") {
		t.Errorf("uid 65534 got:\n%s", out)
	}
	if len(h.revokes) != 0 {
		t.Errorf("the refused peer revoked %v", h.revokes)
	}
	found := false
	for _, l := range lb.Get() {
		found = found || strings.HasPrefix(l, "control: refused a connection from uid 65534 (pid ")
	}
	if !found {
		t.Errorf("log %q: want the refusal", lb.Get())
	}
}

func TestHelperAsk(t *testing.T) {
	path := os.Getenv("CONTROL_HELPER_SOCKET")
	if path == "" {
		t.Skip("a helper of TestOtherUserRefused")
	}
	resp, err := Ask(path, Request{Cmd: CmdRevoke, Src: "198.18.0.2"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Error)
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"cmd":"status"}`, `{"cmd":"revoke","src":"198.18.0.2","door":"ssh"}`, `{"cmd":"revoke","src":"2001:db8::1%eth0"}`, `{`, `null`, `{"cmd":1}`, "\x00\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		switch req.Cmd {
		case CmdStatus:
		case CmdRevoke:
			if _, err := netip.ParseAddr(req.Src); err != nil {
				t.Errorf("accepted revoke of %q", req.Src)
			}
		default:
			t.Errorf("accepted command %q", req.Cmd)
		}
	})
}

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// podman runs podman on a storage of its own under dir, with the
// repository's containers.conf and runc (crun fails on hybrid cgroups),
// so that the machine's images and containers are never touched.
type podman struct {
	t    *testing.T
	args []string
	env  []string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	requireLab(t, "podman", "nft")
	runc, err := exec.LookPath("runc")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/runc"); err != nil {
			t.Skip("runc is not installed (CI installs it: apt-get install podman runc)")
		}
		runc = "/usr/sbin/runc"
	}
	dir := t.TempDir()
	p := &podman{t: t,
		args: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--storage-driver", "vfs", "--runtime", runc, "--cgroup-manager", "cgroupfs", "--events-backend", "file",
			"--tmpdir", filepath.Join(dir, "tmp")},
		env: append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(repoRoot(t), "packaging", "containers.conf")),
	}
	t.Cleanup(func() {
		// Containers first (their mounts), then the storage itself.
		p.cmd("rm", "--all", "--force", "--time", "0").CombinedOutput()
		p.cmd("system", "reset", "--force").CombinedOutput()
	})
	return p
}

func (p *podman) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", append(append([]string{}, p.args...), args...)...)
	cmd.Env = p.env
	return cmd
}

func (p *podman) run(args ...string) string {
	p.t.Helper()
	out, err := p.cmd(args...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// buildImage builds packaging/Containerfile with the test's static
// binaries (as make image does with its own) and returns the image's
// name.
func buildImage(t *testing.T, p *podman) string {
	t.Helper()
	ctx := t.TempDir()
	for _, bin := range []string{knockdBin, knockBin} {
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctx, filepath.Base(bin)), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const image = "localhost/knockd-e2e:test"
	p.run("build", "--quiet", "--timestamp", "0", "-f", filepath.Join(repoRoot(t), "packaging", "Containerfile"), "-t", image, ctx)
	return image
}

// TestImageOpensNFTSetDoor runs the FROM scratch image in a network
// namespace as its non-root user with CAP_NET_RAW and CAP_NET_ADMIN
// added at run time, knocks from another namespace, and finds the
// knocker in the nftables set of the image's namespace; the service
// behind the set answers.
func TestImageOpensNFTSetDoor(t *testing.T) {
	l := newNFTLab(t)
	p := newPodman(t)
	image := buildImage(t, p)

	if user := p.run("image", "inspect", "--format", "{{.Config.User}}", image); user != "65534:65534" {
		t.Errorf("the image runs as %q, want the non-root 65534:65534", user)
	}
	conf := filepath.Join(l.dir, "knockd.conf")
	writeFile(t, conf, `[openSSH]
	sequence = 7000,8000,9000
	seq_timeout = 5
	tcpflags = syn
	cmd_timeout = 30
	NFT_Set = inet knockd ssh4
	NFT_Set_6 = inet knockd ssh6
`)
	os.Chmod(conf, 0o644)
	// The run line of the README, with the namespace of the test instead
	// of the host's network.
	id := p.run("run", "--detach", "--network", "ns:/run/netns/"+l.srv.Name(),
		"--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN",
		"--volume", conf+":/etc/knockd.conf:ro", image,
		"-v", "-c", "/etc/knockd.conf", "-i", l.veth.A.Dev, "--backend", "raw")
	logs := func() string {
		out, _ := p.cmd("logs", id).CombinedOutput()
		return string(out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container output:\n%s", logs())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("the container did not start listening within 30 s:\n%s", logs())
		}
		if state := p.run("inspect", "--format", "{{.State.Status}}", id); state == "exited" {
			t.Fatalf("the container exited:\n%s", logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs(), "attached to interface "+l.veth.A.Dev) {
		t.Errorf("the raw backend did not attach to %s:\n%s", l.veth.A.Dev, logs())
	}

	srv4, cli4 := l.veth.A.Addr.String(), l.veth.B.Addr.String()
	service4 := net.JoinHostPort(srv4, fmt.Sprint(servicePort))
	startEcho(t, l.srv, servicePort)
	mustNotConnect(t, l.cli, service4, "before the knock")
	if _, ok := expires(t, l, "ssh4", cli4); ok {
		t.Fatalf("%s is in the set before it knocked", cli4)
	}

	knockFrom(t, l.cli, knockBin, srv4, "7000", "8000", "9000")
	want := fmt.Sprintf("openSSH: adding %s to nft set inet knockd ssh4 for 30 s", cli4)
	for !strings.Contains(logs(), want) {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("no %q in the container's output", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if left, ok := expires(t, l, "ssh4", cli4); !ok || left > 30*time.Second {
		t.Errorf("%s in the set: %v, expiring in %v; want it there for at most 30 s", cli4, ok, left)
	}
	c := waitConnect(t, l.cli, service4, "after the knock")
	c.Close()
	p.run("rm", "--force", "--time", "2", id)
}

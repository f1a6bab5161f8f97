package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/internal/netlab"
)

// A throwawayRoot is the host's file system seen through an overlay
// whose upper layer is a tmpfs, in a mount namespace of its own held by
// a sleep: whatever dpkg does in it is gone when the sleep is killed,
// and the host's own files are never written.
type throwawayRoot struct {
	t    *testing.T
	pid  int
	root string
}

func newThrowawayRoot(t *testing.T) *throwawayRoot {
	t.Helper()
	for _, tool := range []string{"unshare", "nsenter", "chroot", "mount", "sleep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "3600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		holder.Process.Kill()
		holder.Wait()
	})
	w := t.TempDir()
	r := &throwawayRoot{t: t, pid: holder.Process.Pid, root: filepath.Join(w, "root")}
	// unshare has made the namespace once sleep runs: wait for it.
	self, _ := os.Readlink("/proc/self/ns/mnt")
	for i := 0; ; i++ {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", r.pid))
		if err == nil && ns != self {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.pid)); strings.HasSuffix(exe, "/sleep") {
				break
			}
		}
		if i == 500 {
			t.Fatalf("unshare --mount did not start sleep in a mount namespace of its own")
		}
		time.Sleep(10 * time.Millisecond)
	}
	script := fmt.Sprintf(`set -e
mount -t tmpfs tmpfs %[1]s
mkdir %[1]s/upper %[1]s/work %[1]s/root
mount -t overlay overlay -o lowerdir=/,upperdir=%[1]s/upper,workdir=%[1]s/work %[1]s/root
mount -t proc proc %[1]s/root/proc
mount --rbind /dev %[1]s/root/dev
mount -t tmpfs tmpfs %[1]s/root/run
mount -t tmpfs tmpfs %[1]s/root/tmp
`, w)
	if out, err := exec.Command("nsenter", "-t", fmt.Sprint(r.pid), "-m", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Skipf("cannot make a throwaway overlay root here: %v\n%s", err, out)
	}
	return r
}

// command runs argv chrooted in the throwaway root.
func (r *throwawayRoot) command(argv ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(r.pid), "-m", "chroot", r.root}, argv...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"}
	return cmd
}

// path is where the host sees the throwaway root's file p.
func (r *throwawayRoot) path(p string) string {
	return fmt.Sprintf("/proc/%d/root%s%s", r.pid, r.root, p)
}

func (r *throwawayRoot) readFile(p string) string {
	data, err := os.ReadFile(r.path(p))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

// debianState is what installing and removing our package may change,
// and what reinstalling Debian's knockd must bring back exactly: dpkg's
// record of the package (status, version, conffiles with their hashes,
// maintainer scripts), the package's files, and deb-systemd-helper's
// state for knockd's units.
func (r *throwawayRoot) debianState() string {
	t := r.t
	t.Helper()
	var b strings.Builder
	q, err := r.command("dpkg-query", "-W", "-f", "${Status}|${Version}|${Maintainer}\n${Conffiles}\n", "knockd").CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-query knockd: %v\n%s", err, q)
	}
	b.Write(q)
	files, err := r.command("dpkg", "-L", "knockd").Output()
	if err != nil {
		t.Fatalf("dpkg -L knockd: %v", err)
	}
	paths := strings.Fields(string(files))
	for _, pattern := range []string{"/var/lib/dpkg/info/knockd.*", "/var/lib/systemd/deb-systemd-helper-enabled/*knockd*",
		"/var/lib/systemd/deb-systemd-helper-masked/*knockd*", "/etc/knockd.conf*", "/etc/default/knockd*", "/etc/init.d/knockd*",
		"/lib/systemd/system/knockd*", "/usr/share/lintian/overrides/knockd", "/usr/share/bash-completion/completions/knock*"} {
		m, _ := filepath.Glob(r.path(pattern))
		for _, p := range m {
			paths = append(paths, strings.TrimPrefix(p, r.path("")))
		}
	}
	sort.Strings(paths)
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		fi, err := os.Lstat(r.path(p))
		if err != nil {
			fmt.Fprintf(&b, "%s: absent\n", p)
			continue
		}
		if fi.IsDir() {
			continue
		}
		data, _ := os.ReadFile(r.path(p))
		fmt.Fprintf(&b, "%s %v %x\n", p, fi.Mode(), sha256.Sum256(data))
	}
	return b.String()
}

// ourDeb returns the package to install: $KNOCK_PKG_DEB (make deb's, in
// CI), or one packaging/mkdeb builds from the test's binaries.
func ourDeb(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KNOCK_PKG_DEB"); p != "" {
		return p
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("packages are built for amd64 and arm64, not %s", runtime.GOARCH)
	}
	bin := t.TempDir()
	for _, b := range []string{knockdBin, knockBin} {
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, filepath.Base(b)), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "knockd_test.deb")
	cmd := exec.Command(filepath.Join(repoRoot(t), "packaging", "mkdeb"), runtime.GOARCH, bin, out)
	cmd.Env = append(os.Environ(), "VERSION=0.8+0.test", "COMMIT=test", "MAINTAINER=knock tests <knock-tests@example.org>", "SOURCE_DATE_EPOCH=0", "DEB_COMPRESSION=none")
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkdeb: %v\n%s", err, o)
	}
	return out
}

// debianDeb returns Debian's package of the installed version, to
// restore it with: $KNOCK_DEBIAN_DEB, or apt's cache.
func debianDeb(t *testing.T, version string, require func(string, ...any)) string {
	t.Helper()
	candidates := []string{os.Getenv("KNOCK_DEBIAN_DEB")}
	m, _ := filepath.Glob("/var/cache/apt/archives/knockd_*.deb")
	candidates = append(candidates, m...)
	for _, c := range candidates {
		if c == "" {
			continue
		}
		v, err := exec.Command("dpkg-deb", "-f", c, "Version").Output()
		if err == nil && strings.TrimSpace(string(v)) == version {
			return c
		}
	}
	require("no Debian knockd_%s package to reinstall after ours: set KNOCK_DEBIAN_DEB (.ci/run runs apt-get download knockd) or fill apt's cache", version)
	return ""
}

func (r *throwawayRoot) dpkg(args ...string) string {
	r.t.Helper()
	cmd := r.command(append([]string{"dpkg"}, args...)...)
	cmd.Stdin = nil // a conffile question fails instead of waiting
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// copyIn copies the host's file src to the throwaway root's /tmp and
// returns its path there.
func (r *throwawayRoot) copyIn(src string) string {
	data, err := os.ReadFile(src)
	if err != nil {
		r.t.Fatal(err)
	}
	dst := "/tmp/" + filepath.Base(src)
	if err := os.WriteFile(r.path(dst), data, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return dst
}

// TestPackageOverDebian installs our package over Debian's knockd, the
// way an administrator upgrades, in a throwaway root (the host's files
// under an overlay that vanishes with the test, so the host's knockd is
// never touched, even for a moment): an edited /etc/knockd.conf
// survives without a question, knockd -V and knock -V are ours, the
// units pass systemd-analyze verify, knockd -t reads Debian's
// configuration; then it removes our package, reinstalls Debian's from
// its .deb and checks that dpkg's record and Debian's files are as they
// were. It runs as root when Debian's knockd is installed and its .deb
// is at hand; with KNOCK_PKG_TEST=1 (.ci/run) a missing prerequisite
// fails instead of skipping.
func TestPackageOverDebian(t *testing.T) {
	require := t.Skipf
	if os.Getenv("KNOCK_PKG_TEST") == "1" {
		require = t.Fatalf
	}
	if err := netlab.Available(); err != nil {
		require("needs root for the throwaway root's mounts: %v", err)
	}
	for _, tool := range []string{"dpkg", "dpkg-query", "dpkg-deb", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			require("%s is not installed: %v", tool, err)
		}
	}
	status, err := exec.Command("dpkg-query", "-W", "-f", "${Status}|${Version}|${Maintainer}", "knockd").Output()
	if err != nil || !strings.HasPrefix(string(status), "install ok installed|") || strings.Contains(string(status), "knock-") {
		require("Debian's knockd is not installed (dpkg-query: %q, %v): apt-get install knockd", status, err)
	}
	debVersion := strings.Split(string(status), "|")[1]
	debianPkg := debianDeb(t, debVersion, require)
	ours := ourDeb(t)

	r := newThrowawayRoot(t)
	// man-db's trigger would rebuild the whole manual index at each
	// dpkg run (tens of seconds on a busy machine); the pages are
	// checked below by name.
	os.Remove(r.path("/var/lib/man-db/auto-update"))
	before := r.debianState()
	const conf = "/etc/knockd.conf"
	orig := r.readFile(conf)
	edited := orig + "# edited by TestPackageOverDebian\n"
	if err := os.WriteFile(r.path(conf), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dpkg -i %s:\n%s", filepath.Base(ours), r.dpkg("-i", r.copyIn(ours)))

	if got := r.readFile(conf); got != edited {
		t.Errorf("the administrator's edited %s did not survive the upgrade:\n%s", conf, got)
	}
	for _, leftover := range []string{conf + ".dpkg-dist", conf + ".dpkg-new", conf + ".dpkg-old"} {
		if _, err := os.Stat(r.path(leftover)); err == nil {
			t.Errorf("the upgrade left %s: our %s is not Debian's", leftover, conf)
		}
	}
	for _, bin := range []string{"/usr/sbin/knockd", "/usr/bin/knock"} {
		out, err := r.command(bin, "-V").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "A Go rewrite of knock") || !strings.Contains(string(out), "\ncommit: ") {
			t.Errorf("%s -V after the install: %v\n%s", bin, err, out)
		}
		if want := os.Getenv("KNOCK_PKG_VERSION"); want != "" && !strings.Contains(string(out), "\nversion: "+want+"\n") {
			t.Errorf("%s -V does not say version %s:\n%s", bin, want, out)
		}
	}
	if out, err := r.command("/usr/sbin/knockd", "-t").CombinedOutput(); err != nil {
		t.Errorf("knockd -t on Debian's %s: %v\n%s", conf, err, out)
	}
	if out, err := r.command("dpkg-query", "-W", "-f", "${Status}|${Version}|${Conffiles}", "knockd").Output(); err != nil ||
		!strings.HasPrefix(string(out), "install ok installed|") || strings.Contains(string(out), "|"+debVersion+"|") ||
		!strings.Contains(string(out), " /etc/knockd.conf 7c2c6c194d718e2b3f1d8dfdcc316c54") {
		t.Errorf("dpkg's record after the install: %v\n%s", err, out)
	}
	// Debian's init script, which ours does not ship, stays as an
	// obsolete conffile: sysvinit still starts /usr/sbin/knockd -d.
	if _, err := os.Stat(r.path("/etc/init.d/knockd")); err != nil {
		t.Errorf("/etc/init.d/knockd is gone after the upgrade: %v", err)
	}
	for _, unit := range []string{"/lib/systemd/system/knockd.service", "/lib/systemd/system/knockd-sets.service"} {
		if out, err := r.command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
	for _, f := range []string{"/usr/share/man/man1/knockd.1.gz", "/usr/share/man/man1/knock.1.gz",
		"/usr/share/bash-completion/completions/knockd", "/usr/share/bash-completion/completions/knock",
		"/usr/share/zsh/vendor-completions/_knockd", "/usr/share/zsh/vendor-completions/_knock",
		"/usr/share/doc/knockd/copyright", "/usr/share/doc/knockd/changelog.gz"} {
		if _, err := os.Stat(r.path(f)); err != nil {
			t.Errorf("after the install: %s is missing", f)
		}
	}

	// Remove ours: the binaries go, the edited configuration stays.
	r.dpkg("-r", "knockd")
	if _, err := os.Stat(r.path("/usr/sbin/knockd")); err == nil {
		t.Errorf("/usr/sbin/knockd is still there after dpkg -r")
	}
	if got := r.readFile(conf); got != edited {
		t.Errorf("dpkg -r did not keep the edited %s", conf)
	}
	// Debian's again: the edited file stays through that too.
	r.dpkg("-i", r.copyIn(debianPkg))
	if got := r.readFile(conf); got != edited {
		t.Errorf("reinstalling Debian's knockd did not keep the edited %s", conf)
	}
	if out, _ := r.command("/usr/sbin/knockd", "-V").CombinedOutput(); strings.Contains(string(out), "Go rewrite") {
		t.Errorf("/usr/sbin/knockd is still ours after reinstalling Debian's:\n%s", out)
	}
	if err := os.WriteFile(r.path(conf), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if after := r.debianState(); after != before {
		t.Errorf("Debian's knockd is not as it was before (- before, + after):\n%s", cmp.Diff(before, after))
	}
}

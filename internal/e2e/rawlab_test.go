package e2e

// Helpers shared by the raw-backend tests (raw_test.go, lifecycle_test.go,
// differential_test.go, firewall_test.go): daemons started inside network
// namespaces, knocks sent from another namespace, and the checks of what
// the daemons printed and ran.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
	"golang.org/x/sys/unix"
)

// debianKnockd is knockd 0.8 as Debian packages it (libpcap).
const debianKnockd = "/usr/sbin/knockd"

// requireLab skips the test unless it can build namespaced networks (root,
// ip, /dev/net/tun) and the named programs are installed.
func requireLab(t *testing.T, tools ...string) {
	t.Helper()
	netlab.Require(t) // root: packet sockets need it too
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (CI installs it): %v", tool, err)
		}
	}
}

// startIn runs argv inside ns, in the working directory dir, and waits
// until its output contains ready. The process is stopped (SIGINT) when
// the test ends, before the namespace is deleted.
func startIn(t *testing.T, ns *netlab.Netns, dir, ready string, argv ...string) *daemon {
	t.Helper()
	cmd := ns.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	return launch(t, cmd, ready)
}

// startOurs runs our knockd on the raw backend inside ns, verbose, with
// its state in dir/state, and waits until it listens.
func startOurs(t *testing.T, ns *netlab.Netns, dir, conf, iface string, extra ...string) *daemon {
	t.Helper()
	argv := []string{knockdBin, "-c", conf, "-i", iface, "-v", "--backend", "raw", "--state-dir", filepath.Join(dir, "state")}
	return startIn(t, ns, dir, "listening on", append(argv, extra...)...)
}

// startDebian runs Debian's knockd inside ns, verbose, and waits until it
// listens.
func startDebian(t *testing.T, ns *netlab.Netns, dir, conf, iface string) *daemon {
	t.Helper()
	return startIn(t, ns, dir, "listening on", debianKnockd, "-c", conf, "-i", iface, "-v")
}

// program returns the name of the program d runs ("ip netns exec NS
// PROGRAM ...").
func (d *daemon) program() string {
	if a := d.cmd.Args; len(a) > 4 && a[0] == "ip" {
		return a[4]
	}
	return filepath.Base(d.cmd.Args[0])
}

// exited reports whether the process has ended.
func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitOutput waits until the output holds s at least n times.
func waitOutput(t *testing.T, d *daemon, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(d.output(), s) < n {
		if d.exited() {
			time.Sleep(100 * time.Millisecond) // the last lines may still be on their way
			if strings.Count(d.output(), s) >= n {
				return
			}
			t.Fatalf("%s exited (%v) before printing %q (%d times):\n%s", d.program(), d.waited, s, n, d.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q (%d times) in time:\n%s", d.program(), s, n, d.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// knockLineRE matches knockd's lines about knocks and commands.
var knockLineRE = regexp.MustCompile(`^(\S+: \S+: (Stage \d+|OPEN SESAME|sequence timeout \(stage \d+\)|command timeout)|\S+: running command: .*|no more sequences left .*)$`)

// knockLines returns the output lines about knocks and commands, in order,
// leaving out sequence timeouts when withTimeouts is false (their timing
// is one of the deliberate differences).
func knockLines(out string, withTimeouts bool) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if !knockLineRE.MatchString(l) {
			continue
		}
		if !withTimeouts && strings.Contains(l, ": sequence timeout (stage ") {
			continue
		}
		got = append(got, l)
	}
	return got
}

// linesWith returns the lines of knockLines(out, true) that contain s.
func linesWith(out, s string) []string {
	var got []string
	for _, l := range knockLines(out, true) {
		if strings.Contains(l, s) {
			got = append(got, l)
		}
	}
	return got
}

// fileLines returns the lines of the file at path (none if it is absent).
func fileLines(path string) []string {
	b, _ := os.ReadFile(path)
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// linesEnding returns the lines of the file at path that end with
// " "+suffix: the commands run for one knocker.
func linesEnding(path, suffix string) []string {
	var got []string
	for _, l := range fileLines(path) {
		if strings.HasSuffix(l, " "+suffix) {
			got = append(got, l)
		}
	}
	return got
}

// waitLines waits until get returns want, and fails the test with what
// it returned last if that does not happen within 10 s.
func waitLines(t *testing.T, what string, want []string, get func() []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := get()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle is how long a test waits for something that must not happen:
// knocks on a veth reach the daemon and its commands run within a few
// milliseconds.
const settle = 400 * time.Millisecond

// runIn runs a client program inside ns, bounded to 20 s, and fails the
// test when it fails (exit statuses listed in okCodes are accepted).
func runIn(t *testing.T, ns *netlab.Netns, okCodes []int, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := ns.CommandContext(ctx, name, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && slices.Contains(okCodes, ee.ExitCode()) {
		err = nil
	}
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// knockFrom runs a knock client (knockBin or Debian's "knock") in ns.
func knockFrom(t *testing.T, ns *netlab.Netns, client string, args ...string) {
	t.Helper()
	runIn(t, ns, nil, client, args...)
}

// hping sends one packet with hping3 from ns. spec is PORT (a SYN),
// PORT/udp, or PORT/FLAGS with FLAGS among S A F R P U (e.g. 7001/SA).
// src, when set, spoofs the source address (-a). hping3 exits 1 when no
// reply comes back, which is fine for a knock.
func hping(t *testing.T, ns *netlab.Netns, src, dst, spec string) {
	t.Helper()
	port, kind, _ := strings.Cut(spec, "/")
	args := []string{"-q", "-c", "1", "-p", port}
	switch kind {
	case "":
		args = append(args, "-S")
	case "udp":
		args = append(args, "--udp")
	default:
		for _, f := range kind {
			args = append(args, "-"+string(f))
		}
	}
	if src != "" {
		args = append(args, "-a", src)
	}
	runIn(t, ns, []int{1}, "hping3", append(args, dst)...)
}

// TCP header flags for sendTCP6.
const (
	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10
)

// sendTCP6 sends one bare TCP segment with the given flags from ns to an
// IPv6 destination, through a raw socket (hping3 has no IPv6); the kernel
// adds the IPv6 header and the checksum.
func sendTCP6(t *testing.T, ns *netlab.Netns, dst netip.Addr, port uint16, flags uint8) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, 16); err != nil {
			return fmt.Errorf("IPV6_CHECKSUM: %w", err)
		}
		var seg [20]byte
		binary.BigEndian.PutUint16(seg[0:], uint16(40000+rand.IntN(20000))) // source port
		binary.BigEndian.PutUint16(seg[2:], port)                           // destination port
		binary.BigEndian.PutUint32(seg[4:], rand.Uint32())                  // sequence number
		if flags&tcpACK != 0 {
			binary.BigEndian.PutUint32(seg[8:], rand.Uint32()) // acknowledgment number
		}
		seg[12] = 5 << 4 // data offset: 5 words, no options
		seg[13] = flags
		binary.BigEndian.PutUint16(seg[14:], 65535) // window
		return unix.Sendto(fd, seg[:], 0, &unix.SockaddrInet6{Addr: dst.As16()})
	})
	if err != nil {
		t.Fatalf("sending TCP %#x to [%v]:%d from %s: %v", flags, dst, port, ns, err)
	}
}

// ipIn runs "ip -n NS args" and fails the test on error.
func ipIn(t *testing.T, ns *netlab.Netns, args ...string) {
	t.Helper()
	ns.IP(t, args...)
}

// rxPackets returns the count of packets dev in ns has received.
func rxPackets(t *testing.T, ns *netlab.Netns, dev string) uint64 {
	t.Helper()
	out := ns.IP(t, "-j", "-s", "link", "show", "dev", dev)
	var links []struct {
		Stats64 struct {
			RX struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("reading the counters of %s in %s: %v: %s", dev, ns, err, out)
	}
	return links[0].Stats64.RX.Packets
}

// waitMore runs action and waits until d has printed s once more than
// before.
func waitMore(t *testing.T, d *daemon, s string, action func()) {
	t.Helper()
	n := strings.Count(d.output(), s)
	action()
	waitOutput(t, d, s, n+1)
}

// macOf returns the MAC address of dev in ns.
func macOf(t *testing.T, ns *netlab.Netns, dev string) string {
	t.Helper()
	out := ns.IP(t, "-o", "link", "show", "dev", dev)
	f := strings.Fields(out)
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC address in %q", out)
	return ""
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// nftLab is a server namespace with the example ruleset of
// configs/nftables-knockd.nft guarding servicePort, and a client.
type nftLab struct {
	srv, cli *netlab.Netns
	veth     *netlab.Veth
	dir      string
}

func newNFTLab(t *testing.T) *nftLab {
	t.Helper()
	requireLab(t, "ip", "nft", "setpriv")
	l := &nftLab{srv: netlab.NewNetns(t, "kset-srv"), cli: netlab.NewNetns(t, "kset-cli"), dir: sharedTempDir(t)}
	l.veth = netlab.NewVeth(t, l.srv, l.cli, netlab.Addressing{})
	rules, err := os.ReadFile(filepath.Join(repoRoot(t), "configs", "nftables-knockd.nft"))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(l.dir, "ruleset.nft")
	writeFile(t, f, strings.ReplaceAll(string(rules), "dport 22 ", fmt.Sprintf("dport %d ", servicePort)))
	runIn(t, l.srv, nil, "nft", "-f", f)
	return l
}

// repoRoot is the module's root, two levels above this package.
func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

// asNobodyNetAdmin is the prefix that runs knockd as uid 65534 with CAP_NET_RAW
// and CAP_NET_ADMIN only.
var asNobodyNetAdmin = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
	"--inh-caps=-all,+net_raw,+net_admin", "--ambient-caps=-all,+net_raw,+net_admin"}

// expires returns how long addr has left in the set, from nft's listing.
func expires(t *testing.T, l *nftLab, set, addr string) (time.Duration, bool) {
	t.Helper()
	out, err := l.srv.Command("nft", "list", "set", "inet", "knockd", set).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list set: %v: %s", err, out)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(addr) + ` timeout \S+ expires ([0-9hms.]+)`).FindStringSubmatch(string(out))
	if m == nil {
		return 0, false
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("expiry %q of %s: %v", m[1], addr, err)
	}
	if n := strings.Count(string(out), addr+" "); n != 1 {
		t.Errorf("%s is in set %s %d times:\n%s", addr, set, n, out)
	}
	return d, true
}

// TestNFTSetDoor: a door with only nftables sets, the daemon unprivileged
// but for CAP_NET_RAW and CAP_NET_ADMIN and without a state directory.
// The service is unreachable before the knock and reachable after it, for
// IPv4 and IPv6, each knocker in its family's set; a re-knock pushes the
// expiry out; with the daemon killed by SIGKILL right after, the kernel
// still closes the door on time.
func TestNFTSetDoor(t *testing.T) {
	t.Parallel()
	l := newNFTLab(t)
	conf := filepath.Join(l.dir, "knockd.conf")
	writeFile(t, conf, `[openSSH]
	sequence = 7000,8000,9000
	seq_timeout = 5
	tcpflags = syn
	cmd_timeout = 3
	NFT_Set = inet knockd ssh4
	NFT_Set_6 = inet knockd ssh6
`)
	argv := append(append([]string{}, asNobodyNetAdmin...), knockdBin, "-c", conf, "-i", l.veth.A.Dev, "-v", "--backend", "raw")
	d := startIn(t, l.srv, l.dir, "listening on", argv...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := l.srv.Command("nft", "list", "ruleset").CombinedOutput()
			t.Logf("knockd output:\n%s\nruleset:\n%s", d.output(), out)
		}
	})
	srv4, srv6 := l.veth.A.Addr.String(), l.veth.A.Addr6.String()
	cli4, cli6 := l.veth.B.Addr.String(), l.veth.B.Addr6.String()
	service4 := net.JoinHostPort(srv4, fmt.Sprint(servicePort))
	service6 := net.JoinHostPort(srv6, fmt.Sprint(servicePort))
	startEcho(t, l.srv, servicePort)

	mustNotConnect(t, l.cli, service4, "over IPv4 before the knock")
	mustNotConnect(t, l.cli, service6, "over IPv6 before the knock")

	knockFrom(t, l.cli, knockBin, srv4, "7000", "8000", "9000")
	waitOutput(t, d, fmt.Sprintf("openSSH: adding %s to nft set inet knockd ssh4 for 3 s", cli4), 1)
	c := waitConnect(t, l.cli, service4, "over IPv4 after the knock")
	c.Close()
	// A re-knock pushes the expiry out, on the one element.
	time.Sleep(time.Second)
	before, ok := expires(t, l, "ssh4", cli4)
	if !ok {
		t.Fatalf("%s left the set 1 s into its 3 s", cli4)
	}
	knockFrom(t, l.cli, knockBin, srv4, "7000", "8000", "9000")
	waitOutput(t, d, fmt.Sprintf("openSSH: adding %s to nft set inet knockd ssh4 for 3 s", cli4), 2)
	reknocked := time.Now()
	if after, ok := expires(t, l, "ssh4", cli4); !ok || after <= before {
		t.Errorf("after the re-knock %s expires in %v (present %v), before it in %v: want later", cli4, after, ok, before)
	}

	knockFrom(t, l.cli, knockBin, "-6", srv6, "7000", "8000", "9000")
	waitOutput(t, d, fmt.Sprintf("openSSH: adding %s to nft set inet knockd ssh6 for 3 s", cli6), 1)
	addedAfterOpen(t, d.output())
	c = waitConnect(t, l.cli, service6, "over IPv6 after the knock")
	c.Close()
	if _, ok := expires(t, l, "ssh6", cli4); ok {
		t.Errorf("the IPv4 knocker is in the IPv6 set")
	}
	if _, ok := expires(t, l, "ssh4", cli6); ok {
		t.Errorf("the IPv6 knocker is in the IPv4 set")
	}

	// SIGKILL, never restarted: the kernel closes the door by itself.
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	closed := waitNoConnect(t, l.cli, service4)
	if el := closed.Sub(reknocked); el > 8*time.Second {
		t.Errorf("the door closed %v after the re-knock, want about Cmd_Timeout (3s)", el)
	}
	waitNoConnect(t, l.cli, service6)
	if out := d.output(); strings.Contains(out, "running command") {
		t.Errorf("a set door ran a command:\n%s", out)
	}
}

// TestNFTSetStartErrors: each unusable set stops the start-up with exit
// status 1 and one line naming the door, the key and the set, with the
// command that would fix it.
func TestNFTSetStartErrors(t *testing.T) {
	t.Parallel()
	l := newNFTLab(t)
	runIn(t, l.srv, nil, "nft", "add set inet knockd plain4 { type ipv4_addr; }")
	tests := []struct {
		name, set string
		prefix    []string
		want      []string
	}{
		{"no table", "NFT_Set = ip nosuch ssh4", nil,
			[]string{"[d] NFT_Set = ip nosuch ssh4: there is no table ip nosuch", "nft add table ip nosuch && nft add set ip nosuch ssh4 '{ type ipv4_addr; flags timeout; }'"}},
		{"no set", "NFT_Set_6 = inet knockd nosuch", nil,
			[]string{"[d] NFT_Set_6 = inet knockd nosuch: table inet knockd has no set nosuch", "nft add set inet knockd nosuch '{ type ipv6_addr; flags timeout; }'"}},
		{"wrong type", "NFT_Set = inet knockd ssh6", nil,
			[]string{"[d] NFT_Set = inet knockd ssh6: the set holds ipv6_addr, not ipv4_addr", "nft delete set inet knockd ssh6 && nft add set"}},
		{"no timeouts", "NFT_Set = inet knockd plain4", nil,
			[]string{"[d] NFT_Set = inet knockd plain4: the set has no timeouts", "flags timeout"}},
		{"no CAP_NET_ADMIN", "NFT_Set = inet knockd ssh4",
			[]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw"},
			[]string{"CAP_NET_ADMIN", "setcap cap_net_raw,cap_net_admin+ep", "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(l.dir, fmt.Sprintf("knockd%d.conf", i))
			writeFile(t, conf, "[d]\n\tsequence = 7000\n\tNFT_Set = inet knockd ssh4\n\tNFT_Set_6 = inet knockd ssh6\n\t"+tt.set+"\n")
			mustFailStart(t, l.srv, l.dir, l.veth.A.Dev, conf, tt.prefix, tt.want)
		})
	}
}

// mustFailStart runs knockd in ns on conf, after prefix, and checks that
// it exits with status 1 and one line saying each of want.
func mustFailStart(t *testing.T, ns *netlab.Netns, dir, iface, conf string, prefix, want []string) {
	t.Helper()
	argv := append(append([]string{}, prefix...), knockdBin, "-c", conf, "-i", iface, "--backend", "raw")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := ns.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("%v, want exit status 1:\n%s", err, out)
	}
	msg := strings.TrimSpace(string(out))
	if strings.Count(msg, "\n") != 0 {
		t.Errorf("want one line, got:\n%s", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not say %q", msg, w)
		}
	}
}

// TestIPSetStartErrors: the same for ipsets.
func TestIPSetStartErrors(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip", "ipset", "setpriv")
	srv, cli := netlab.NewNetns(t, "kipe-srv"), netlab.NewNetns(t, "kipe-cli")
	veth := netlab.NewVeth(t, srv, cli, netlab.Addressing{NoIPv6: true})
	dir := sharedTempDir(t)
	runIn(t, srv, nil, "ipset", "create", "knock4", "hash:ip", "family", "inet", "timeout", "60")
	runIn(t, srv, nil, "ipset", "create", "knock6", "hash:ip", "family", "inet6", "timeout", "60")
	runIn(t, srv, nil, "ipset", "create", "plain4", "hash:ip", "family", "inet")
	runIn(t, srv, nil, "ipset", "create", "net4", "hash:net", "family", "inet", "timeout", "60")
	tests := []struct {
		name, set string
		prefix    []string
		want      []string
	}{
		{"no ipset", "IPSet = nosuch", nil,
			[]string{"[d] IPSet = nosuch: there is no ipset nosuch: create it with: ipset create nosuch hash:ip family inet timeout 60"}},
		{"wrong type", "IPSet = net4", nil,
			[]string{"[d] IPSet = net4: the ipset is hash:net, not hash:ip: create it with: ipset destroy net4 && ipset create net4 hash:ip family inet timeout 60"}},
		{"wrong family", "IPSet_6 = knock4", nil,
			[]string{"[d] IPSet_6 = knock4: the ipset is not of family inet6: create it with: ipset destroy knock4 && ipset create knock4 hash:ip family inet6 timeout 60"}},
		{"no timeout", "IPSet = plain4", nil,
			[]string{"[d] IPSet = plain4: the ipset has no timeout, so its entries would never expire: create it with: ipset destroy plain4 && ipset create plain4 hash:ip family inet timeout 60"}},
		{"no CAP_NET_ADMIN", "IPSet = knock4",
			[]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw"},
			[]string{"CAP_NET_ADMIN", "setcap cap_net_raw,cap_net_admin+ep", "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, fmt.Sprintf("knockd%d.conf", i))
			writeFile(t, conf, "[d]\n\tsequence = 7000\n\tIPSet = knock4\n\tIPSet_6 = knock6\n\t"+tt.set+"\n")
			mustFailStart(t, srv, dir, veth.A.Dev, conf, tt.prefix, tt.want)
		})
	}
}

// TestSetReloadMissing: SIGHUP to a configuration whose set is missing
// keeps the running configuration and logs why; the running door still
// opens.
func TestSetReloadMissing(t *testing.T) {
	t.Parallel()
	l := newNFTLab(t)
	conf := filepath.Join(l.dir, "knockd.conf")
	door := "[openSSH]\n\tsequence = 7000,8000\n\tseq_timeout = 5\n\tcmd_timeout = 30\n\tNFT_Set = inet knockd ssh4\n\tNFT_Set_6 = inet knockd ssh6\n"
	writeFile(t, conf, door)
	argv := append(append([]string{}, asNobodyNetAdmin...), knockdBin, "-c", conf, "-i", l.veth.A.Dev, "-v", "--backend", "raw")
	d := startIn(t, l.srv, l.dir, "listening on", argv...)
	writeFile(t, conf, strings.ReplaceAll(door, "ssh4", "nosuch4"))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, d, "[openSSH] NFT_Set = inet knockd nosuch4: table inet knockd has no set nosuch4: create it with: nft add set inet knockd nosuch4 '{ type ipv4_addr; flags timeout; }'; keeping the running configuration", 1)
	knockFrom(t, l.cli, knockBin, l.veth.A.Addr.String(), "7000", "8000")
	waitOutput(t, d, fmt.Sprintf("openSSH: adding %s to nft set inet knockd ssh4 for 30 s", l.veth.B.Addr), 1)
	if _, ok := expires(t, l, "ssh4", l.veth.B.Addr.String()); !ok {
		t.Errorf("%s is not in ssh4 after the refused reload", l.veth.B.Addr)
	}
}

// TestIPSetDoor: the same with iptables and ipset, over IPv4, from the
// lines of configs/iptables-ipset.sh.
func TestIPSetDoor(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip", "iptables", "ipset", "setpriv")
	srv, cli := netlab.NewNetns(t, "kips-srv"), netlab.NewNetns(t, "kips-cli")
	veth := netlab.NewVeth(t, srv, cli, netlab.Addressing{NoIPv6: true})
	dir := sharedTempDir(t)
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "configs", "iptables-ipset.sh"))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "rules.sh")
	writeFile(t, f, strings.ReplaceAll(string(script), "--dport 22 ", fmt.Sprintf("--dport %d ", servicePort)))
	runIn(t, srv, nil, "sh", f)
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, "[openSSH]\n\tsequence = 7000,8000,9000\n\tseq_timeout = 5\n\ttcpflags = syn\n\tcmd_timeout = 3\n\tIPSet = knock4\n\tIPSet_6 = knock6\n")
	argv := append(append([]string{}, asNobodyNetAdmin...), knockdBin, "-c", conf, "-i", veth.A.Dev, "-v", "--backend", "raw")
	d := startIn(t, srv, dir, "listening on", argv...)
	service := net.JoinHostPort(veth.A.Addr.String(), fmt.Sprint(servicePort))
	startEcho(t, srv, servicePort)

	mustNotConnect(t, cli, service, "before the knock")
	knockFrom(t, cli, knockBin, veth.A.Addr.String(), "7000", "8000", "9000")
	waitOutput(t, d, fmt.Sprintf("openSSH: adding %s to ipset knock4 for 3 s", veth.B.Addr), 1)
	opened := time.Now()
	c := waitConnect(t, cli, service, "after the knock")
	c.Close()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	if el := waitNoConnect(t, cli, service).Sub(opened); el > 8*time.Second {
		t.Errorf("the door closed %v after the opening, want about Cmd_Timeout (3s)", el)
	}
	if strings.Contains(d.output(), "error") {
		t.Errorf("errors in the output:\n%s", d.output())
	}
}

// TestSetsOutsideCommandLimits: a door with a start command and a set,
// MaxCommands = 1 and a command that holds its slot: every knocker is in
// the set at once, whatever the command runner queues or refuses.
func TestSetsOutsideCommandLimits(t *testing.T) {
	t.Parallel()
	l := newNFTLab(t)
	conf := filepath.Join(l.dir, "knockd.conf")
	writeFile(t, conf, `[options]
	MaxCommands = 1
[crowd]
	sequence      = 7000:udp
	seq_timeout   = 5
	cmd_timeout   = 60
	start_command = sleep 5
	NFT_Set       = inet knockd ssh4
	NFT_Set_6     = inet knockd ssh6
`)
	argv := []string{knockdBin, "-c", conf, "-i", l.veth.A.Dev, "-v", "--backend", "raw", "--state-dir", filepath.Join(l.dir, "state")}
	d := startIn(t, l.srv, l.dir, "listening on", argv...)
	const n = 20
	// One datagram from each of n addresses of the client's.
	for i := range n {
		l.cli.IP(t, "addr", "add", fmt.Sprintf("198.18.5.%d/32", i+1), "dev", l.veth.B.Dev)
	}
	err := l.cli.Do(func() error {
		for i := range n {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 5, byte(i+1))}, &net.UDPAddr{IP: l.veth.A.Addr.AsSlice(), Port: 7000})
			if err != nil {
				return err
			}
			_, err = c.Write([]byte("knock"))
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		waitOutput(t, d, fmt.Sprintf("crowd: adding 198.18.5.%d to nft set inet knockd ssh4 for 60 s", i+1), 1)
	}
	for i := range n {
		if _, ok := expires(t, l, "ssh4", fmt.Sprintf("198.18.5.%d", i+1)); !ok {
			t.Errorf("198.18.5.%d is not in the set", i+1)
		}
	}
	addedAfterOpen(t, d.output())
	if got := strings.Count(d.output(), "crowd: running command: sleep 5"); got >= n {
		t.Errorf("%d start commands ran, want fewer than %d (MaxCommands = 1, each holding its slot for 5 s)", got, n)
	}
}

// addedAfterOpen checks that each "DOOR: adding IP to ..." line comes
// after a "IP: DOOR: OPEN SESAME" line that it follows: the sets start
// adding as soon as the matcher finds the opening, before its lines are
// written, and their lines must not come first.
func addedAfterOpen(t *testing.T, out string) {
	t.Helper()
	if line, n := addedBeforeOpen(out); line != "" {
		t.Errorf("%q comes before its OPEN SESAME line:\n%s", line, out)
	} else if n == 0 {
		t.Errorf("no adding line in the output:\n%s", out)
	}
}

// addedBeforeOpen returns the first adding line of out that has no OPEN
// SESAME line of its own before it, and the number of adding lines.
func addedBeforeOpen(out string) (string, int) {
	opened := map[string]int{} // "IP: DOOR" → OPEN SESAME lines so far
	added := map[string]int{}  // "IP: DOOR SET" → adding lines so far
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, ": OPEN SESAME"); i >= 0 {
			f := strings.Fields(line[:i]) // [time...] IP: DOOR
			if len(f) >= 2 {
				opened[f[len(f)-2]+" "+f[len(f)-1]]++
			}
			continue
		}
		door, rest, ok := strings.Cut(line, ": adding ")
		if !ok {
			continue
		}
		n++
		ip, set, _ := strings.Cut(rest, " ")
		door = door[strings.LastIndex(door, " ")+1:] // after a time stamp, if any
		k := ip + ": " + door
		if added[k+" "+set]++; added[k+" "+set] > opened[k] {
			return line, n
		}
	}
	return "", n
}

func TestAddedBeforeOpen(t *testing.T) {
	for _, c := range []struct {
		out  string
		bad  string
		seen int
	}{
		{"198.18.0.2: ssh: Stage 1\n198.18.0.2: ssh: OPEN SESAME\nssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 3 s\n", "", 1},
		{"[2026-12-02 03:00] 198.18.0.2: ssh: OPEN SESAME\n[2026-12-02 03:00] ssh: adding 198.18.0.2 to ipset k for 3 s\n", "", 1},
		{"ssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 3 s\n198.18.0.2: ssh: OPEN SESAME\n", "ssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 3 s", 1},
		{"198.18.0.3: ssh: OPEN SESAME\nssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 3 s\n", "ssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 3 s", 1},
		{"198.18.0.2: ssh: OPEN SESAME\nssh: adding 198.18.0.2 to x for 3 s\nssh: adding 198.18.0.2 to x for 3 s\n", "ssh: adding 198.18.0.2 to x for 3 s", 2},
		{"198.18.0.2: ssh: OPEN SESAME\n", "", 0},
		{"198.18.0.2: ssh: OPEN SESAME\nssh: adding 198.18.0.2 to x for 3 s\nssh: adding 198.18.0.2 to ipset y for 3 s\n", "", 2},
	} {
		if bad, seen := addedBeforeOpen(c.out); bad != c.bad || seen != c.seen {
			t.Errorf("addedBeforeOpen(%q) = %q, %d; want %q, %d", c.out, bad, seen, c.bad, c.seen)
		}
	}
}

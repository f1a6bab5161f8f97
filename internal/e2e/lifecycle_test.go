package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// lifecycleDev is the name of the veth end knockd is told to watch, in
// the server namespace (the client's end has the same name in its own).
const lifecycleDev = "kn0"

// addrSettle gives the daemon time to read an address change from
// rtnetlink: nothing in its output marks that moment, and a knock sent in
// the same millisecond could arrive first.
const addrSettle = 300 * time.Millisecond

// TestRawInterfaceLifecycle starts our knockd on the raw backend with -i
// naming an interface that does not exist yet, then creates it, flaps it
// down and up, deletes and re-creates it, and moves the server to another
// address, checking after each step that knocks (IPv4 and IPv6) open the
// door, and after the move that knocks to the old address no longer do.
func TestRawInterfaceLifecycle(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip")
	srv := netlab.NewNetns(t, "klife-srv")
	cli := netlab.NewNetns(t, "klife-cli")
	dir := t.TempDir()
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, `[d]
	sequence = 7101,7102:udp,7103
	seq_timeout = 5
	command = echo d %IP% >> cmds
`)
	cmds := filepath.Join(dir, "cmds")
	d := startOurs(t, srv, dir, conf, lifecycleDev)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_DUMP") != "" {
			t.Logf("knockd output:\n%s", d.output())
		}
	})
	waitOutput(t, d, "waiting for interface "+lifecycleDev, 1)

	srvAddr, srvAddr6 := "198.18.0.1", "2001:db8::1"
	const cliAddr, cliAddr6 = "198.18.0.2", "2001:db8::2"
	// address (re)applies the addresses of both ends; "replace" makes it
	// idempotent, for after a flap that may have flushed some.
	address := func() {
		for _, a := range [][4]string{{srvAddr, cliAddr, srvAddr6, cliAddr6}, {cliAddr, srvAddr, cliAddr6, srvAddr6}} {
			ns := srv
			if a[0] == cliAddr {
				ns = cli
			}
			ipIn(t, ns, "addr", "replace", a[0], "peer", a[1], "dev", lifecycleDev)
			ipIn(t, ns, "addr", "replace", a[2], "peer", a[3], "dev", lifecycleDev, "nodad")
		}
	}
	create := func() {
		ipIn(t, srv, "link", "add", lifecycleDev, "type", "veth", "peer", "name", lifecycleDev, "netns", cli.Name())
		for _, ns := range []*netlab.Netns{srv, cli} {
			ipIn(t, ns, "link", "set", "dev", lifecycleDev, "addrgenmode", "none")
			ipIn(t, ns, "link", "set", "dev", lifecycleDev, "up")
		}
		address()
	}
	var want4, want6 []string
	// knocks knocks at the server's current addresses, with knock 0.8
	// when it is installed (else ours), and waits for both openings.
	knocks := func(step string) {
		t.Helper()
		time.Sleep(addrSettle)
		client := clientOrOurs()
		knockFrom(t, cli, client, srvAddr, "7101", "7102:udp", "7103")
		knockFrom(t, cli, knockBin, srvAddr6, "7101", "7102:udp", "7103")
		want4 = append(want4, "d "+cliAddr)
		want6 = append(want6, "d "+cliAddr6)
		waitLines(t, step+": IPv4 commands", want4, func() []string { return linesEnding(cmds, cliAddr) })
		waitLines(t, step+": IPv6 commands", want6, func() []string { return linesEnding(cmds, cliAddr6) })
	}

	dev := "interface " + lifecycleDev
	waitMore(t, d, "attached to "+dev, create)
	knocks("created after start")

	waitMore(t, d, dev+" is down", func() { ipIn(t, srv, "link", "set", "dev", lifecycleDev, "down") })
	waitMore(t, d, dev+" is up", func() { ipIn(t, srv, "link", "set", "dev", lifecycleDev, "up") })
	address()
	knocks("flapped down and up")

	waitMore(t, d, dev+" is gone", func() { ipIn(t, srv, "link", "del", "dev", lifecycleDev) })
	waitMore(t, d, "attached to "+dev, create)
	knocks("deleted and re-created")

	// Move the server to new addresses. The client keeps routes to the
	// old ones, with static neighbour entries, so that knocks to them
	// still reach the server's interface: they must not count.
	mac := macOf(t, srv, lifecycleDev)
	oldAddr, oldAddr6 := srvAddr, srvAddr6
	srvAddr, srvAddr6 = "198.18.0.5", "2001:db8::5"
	ipIn(t, srv, "addr", "del", oldAddr, "peer", cliAddr, "dev", lifecycleDev)
	ipIn(t, srv, "addr", "del", oldAddr6, "peer", cliAddr6, "dev", lifecycleDev)
	ipIn(t, srv, "addr", "add", srvAddr, "peer", cliAddr, "dev", lifecycleDev)
	ipIn(t, srv, "addr", "add", srvAddr6, "peer", cliAddr6, "dev", lifecycleDev, "nodad")
	ipIn(t, cli, "route", "add", srvAddr+"/32", "dev", lifecycleDev)
	ipIn(t, cli, "route", "add", srvAddr6+"/128", "dev", lifecycleDev)
	ipIn(t, cli, "neigh", "replace", oldAddr, "lladdr", mac, "dev", lifecycleDev, "nud", "permanent")
	ipIn(t, cli, "neigh", "replace", oldAddr6, "lladdr", mac, "dev", lifecycleDev, "nud", "permanent")
	time.Sleep(addrSettle)
	rx := rxPackets(t, srv, lifecycleDev)
	knockFrom(t, cli, clientOrOurs(), oldAddr, "7101", "7102:udp", "7103")
	knockFrom(t, cli, knockBin, oldAddr6, "7101", "7102:udp", "7103")
	time.Sleep(settle)
	if n := rxPackets(t, srv, lifecycleDev) - rx; n < 6 {
		t.Fatalf("the server's %s received %d packets, want the 6 knocks to its old addresses", lifecycleDev, n)
	}
	if got := knockLines(d.output(), true); len(got) != 3*2*5 {
		// 3 rounds so far, IPv4 and IPv6, 5 lines each (3 stages, OPEN
		// SESAME, running command).
		t.Fatalf("knocks to the old addresses %s and %s counted:\n%s", oldAddr, oldAddr6, d.output())
	}
	knocks("address changed")
	time.Sleep(settle)
	if got := knockLines(d.output(), true); len(got) != 4*2*5 {
		t.Errorf("want %d knock lines in all, got %d:\n%s", 4*2*5, len(got), d.output())
	}
}

// clientOrOurs returns Debian's knock when it is installed, else ours.
func clientOrOurs() string {
	if _, err := exec.LookPath("knock"); err == nil {
		return "knock"
	}
	return knockBin
}

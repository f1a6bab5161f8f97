package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// rawDoors are the doors of TestRawBackendAcrossVeth. Each door has its
// own ports, so that one door's attempts never meet another's, except
// target and target6, whose Targets keep them apart.
const rawDoors = `[options]
	logfile = knockd.log
[syn]
	sequence = 7101,7102:udp,7103
	seq_timeout = 5
	tcpflags = syn
	command = echo syn %IP% >> cmds
[synnoack]
	sequence = 7201,7202
	seq_timeout = 5
	tcpflags = syn,!ack
	command = echo synnoack %IP% >> cmds
[ack]
	sequence = 7301,7302
	seq_timeout = 5
	tcpflags = ack
	command = echo ack %IP% >> cmds
[udp]
	sequence = 7401:udp,7402:udp
	seq_timeout = 5
	start_command = echo udp %IP% >> cmds
	start_command_6 = echo udp6 %IP% >> cmds
[target]
	sequence = 7501,7502
	seq_timeout = 5
	target = 198.18.0.11
	command = echo target %IP% >> cmds
[target6]
	sequence = 7501,7502
	seq_timeout = 5
	target = 2001:db8::11
	command = echo target6 %IP% >> cmds
[router]
	sequence = 7601,7602
	seq_timeout = 5
	target = 198.18.9.9
	command = echo router %IP% >> cmds
`

// TestRawBackendAcrossVeth runs our knockd (--backend raw) in a server
// namespace and knocks at it from a client namespace across a veth pair,
// with our knock, Debian's knock 0.8, hping3 (IPv4 TCP with any flags)
// and hand-made TCP segments (IPv6 with any flags): TCP and UDP, IPv4 and
// IPv6, doors with tcpflags syn, syn,!ack and ack, and doors with a
// Target. It checks the commands run (each appends a line to a file) and
// knockd's -v lines, per knocker, in order.
func TestRawBackendAcrossVeth(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip", "knock", "hping3")
	srv := netlab.NewNetns(t, "kraw-srv")
	cli := netlab.NewNetns(t, "kraw-cli")
	link := netlab.NewVeth(t, srv, cli, netlab.Addressing{}) // server 198.18.0.1, 2001:db8::1; client .2, ::2
	sdev, cdev := link.A.Dev, link.B.Dev
	// A second address on the server for the Target doors, and a route
	// through the server to an address it does not have (a router's
	// Target).
	ipIn(t, srv, "addr", "add", "198.18.0.11/32", "dev", sdev)
	ipIn(t, srv, "addr", "add", "2001:db8::11/128", "dev", sdev, "nodad")
	ipIn(t, cli, "route", "add", "198.18.0.11/32", "via", "198.18.0.1", "dev", cdev)
	ipIn(t, cli, "route", "add", "2001:db8::11/128", "via", "2001:db8::1", "dev", cdev)
	ipIn(t, cli, "route", "add", "198.18.9.9/32", "via", "198.18.0.1", "dev", cdev)

	dir := t.TempDir()
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, rawDoors)
	d := startOurs(t, srv, dir, conf, sdev)
	cmds := filepath.Join(dir, "cmds")
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_DUMP") != "" {
			t.Logf("knockd output:\n%s", d.output())
			b, _ := os.ReadFile(cmds)
			t.Logf("commands:\n%s", b)
		}
	})

	type step struct {
		what string
		send func(t *testing.T)
		// door is the door the step opens; "" when it must open none.
		door string
		// lines are the -v lines the step adds for this knocker, without
		// the "IP: " prefix; running-command lines are checked apart.
		lines []string
	}
	our := func(args ...string) func(*testing.T) {
		return func(t *testing.T) { knockFrom(t, cli, knockBin, args...) }
	}
	deb := func(args ...string) func(*testing.T) {
		return func(t *testing.T) { knockFrom(t, cli, "knock", args...) }
	}
	hp := func(dst string, specs ...string) func(*testing.T) {
		return func(t *testing.T) {
			for _, s := range specs {
				hping(t, cli, "", dst, s)
			}
		}
	}
	type seg struct {
		port  uint16
		flags uint8
	}
	raw6 := func(dst string, segs ...seg) func(*testing.T) {
		return func(t *testing.T) {
			for _, s := range segs {
				sendTCP6(t, cli, netip.MustParseAddr(dst), s.port, s.flags)
			}
		}
	}
	then := func(fs ...func(*testing.T)) func(*testing.T) {
		return func(t *testing.T) {
			for _, f := range fs {
				f(t)
			}
		}
	}
	pause := func(t *testing.T) { time.Sleep(settle) }
	stages := func(door string, n int, open bool) []string {
		var l []string
		for i := 1; i <= n; i++ {
			l = append(l, fmt.Sprintf("%s: Stage %d", door, i))
		}
		if open {
			l = append(l, door+": OPEN SESAME")
		}
		return l
	}

	v4 := []step{
		{"our knock, TCP and UDP", our("198.18.0.1", "7101", "7102:udp", "7103"), "syn", stages("syn", 3, true)},
		{"knock 0.8, TCP and UDP", deb("198.18.0.1", "7101", "7102:udp", "7103"), "syn", stages("syn", 3, true)},
		{"hping3 SYN and UDP", hp("198.18.0.1", "7101", "7102/udp", "7103"), "syn", stages("syn", 3, true)},
		{"hping3 ACK on a syn door", hp("198.18.0.1", "7101/A", "7102/udp", "7103/A"), "", nil},
		{"syn,!ack: a SYN-ACK in the middle is ignored", hp("198.18.0.1", "7201", "7202/SA", "7202"), "synnoack", stages("synnoack", 2, true)},
		{"syn,!ack: knock 0.8", deb("198.18.0.1", "7201", "7202"), "synnoack", stages("synnoack", 2, true)},
		{"ack: knock 0.8's SYNs do not count", deb("198.18.0.1", "7301", "7302"), "", nil},
		{"ack: our SYNs do not count", our("198.18.0.1", "7301", "7302"), "", nil},
		{"ack: hping3 SYNs do not count", hp("198.18.0.1", "7301", "7302", "7302/SA"), "", nil},
		{"ack: a SYN does not advance an attempt", then(hp("198.18.0.1", "7301/A", "7302"), pause), "", []string{"ack: Stage 1"}},
		{"ack: the ACK does", hp("198.18.0.1", "7302/A"), "ack", []string{"ack: Stage 2", "ack: OPEN SESAME"}},
		{"ack: hping3 -A twice", hp("198.18.0.1", "7301/A", "7302/A"), "ack", stages("ack", 2, true)},
		{"ack: hping3 -SA (ack set) counts", hp("198.18.0.1", "7301/SA", "7302/PA"), "ack", stages("ack", 2, true)},
		{"UDP: knock 0.8 -u", deb("-u", "198.18.0.1", "7401", "7402"), "udp", stages("udp", 2, true)},
		{"UDP: our knock", our("198.18.0.1", "7401:udp", "7402:udp"), "udp", stages("udp", 2, true)},
		{"Target: knocks to the first address do not count", our("198.18.0.1", "7501", "7502"), "", nil},
		{"Target: knocks to the Target do", deb("198.18.0.11", "7501", "7502"), "target", stages("target", 2, true)},
		{"router Target: knocks to the host do not count", hp("198.18.0.1", "7601", "7602"), "", nil},
		{"router Target: knocks through it to the Target do", our("198.18.9.9", "7601", "7602"), "router", stages("router", 2, true)},
	}
	v6 := []step{
		{"our knock, TCP and UDP", our("2001:db8::1", "7101", "7102:udp", "7103"), "syn", stages("syn", 3, true)},
		{"knock 0.8, TCP and UDP", deb("2001:db8::1", "7101", "7102:udp", "7103"), "syn", stages("syn", 3, true)},
		{"a raw SYN", raw6("2001:db8::1", seg{7101, tcpSYN}), "", []string{"syn: Stage 1"}},
		{"then UDP (our knock) and a raw SYN", then(our("2001:db8::1", "7102:udp"), raw6("2001:db8::1", seg{7103, tcpSYN})), "syn", []string{"syn: Stage 2", "syn: Stage 3", "syn: OPEN SESAME"}},
		{"syn,!ack: a SYN-ACK in the middle is ignored", raw6("2001:db8::1", seg{7201, tcpSYN}, seg{7202, tcpSYN | tcpACK}, seg{7202, tcpSYN}), "synnoack", stages("synnoack", 2, true)},
		{"ack: SYN knocks do not count", then(our("2001:db8::1", "7301", "7302"), deb("2001:db8::1", "7301", "7302")), "", nil},
		{"ack: a SYN does not advance an attempt", then(raw6("2001:db8::1", seg{7301, tcpACK}, seg{7302, tcpSYN}), pause), "", []string{"ack: Stage 1"}},
		{"ack: the ACK does", raw6("2001:db8::1", seg{7302, tcpACK | tcpPSH}), "ack", []string{"ack: Stage 2", "ack: OPEN SESAME"}},
		{"UDP: knock 0.8 -u, Start_Command_6", deb("-u", "2001:db8::1", "7401", "7402"), "udp6", stages("udp", 2, true)},
		{"Target: knocks to the first address do not count", our("2001:db8::1", "7501", "7502"), "", nil},
		{"Target: knocks to the Target do", deb("2001:db8::11", "7501", "7502"), "target6", stages("target6", 2, true)},
	}
	for _, tc := range []struct {
		name, ip string
		steps    []step
	}{{"IPv4", "198.18.0.2", v4}, {"IPv6", "2001:db8::2", v6}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var wantCmds, wantLines []string
			for _, st := range tc.steps {
				st.send(t)
				for _, l := range st.lines {
					wantLines = append(wantLines, tc.ip+": "+l)
				}
				if st.door != "" {
					wantCmds = append(wantCmds, st.door+" "+tc.ip)
				}
				// Commands run in order of the knocks: a step that
				// opened a door it should not have shows up as an
				// extra line before the next step's.
				waitLines(t, st.what+": commands run for "+tc.ip, wantCmds, func() []string { return linesEnding(cmds, tc.ip) })
				waitLines(t, st.what+": -v lines for "+tc.ip, wantLines, func() []string {
					var got []string
					for _, l := range linesWith(d.output(), tc.ip+": ") {
						if !strings.Contains(l, "running command") {
							got = append(got, l)
						}
					}
					return got
				})
			}
			time.Sleep(settle)
			if got := linesEnding(cmds, tc.ip); !slices.Equal(got, wantCmds) {
				t.Errorf("at the end, commands run for %s:\n got  %q\n want %q", tc.ip, got, wantCmds)
			}
		})
	}
}

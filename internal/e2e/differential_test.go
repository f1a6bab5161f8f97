package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// The two daemons of a differential run, by index.
const (
	deb = 0 // Debian's knockd 0.8 (libpcap)
	our = 1 // ours, --backend raw
)

var daemonNames = [2]string{"knockd 0.8", "ours"}

// The knockers of a differential run: the client namespace's own address
// and extra addresses that hping3 -a sends from.
const (
	srvIP  = "198.18.0.1"
	srvIP6 = "2001:db8::1"
	cliIP  = "198.18.0.2"
	cliIP6 = "2001:db8::2"
)

// extraKnockers are more client addresses (198.18.0.3 ...), for knockers
// that must not meet each other, or must.
func knocker(i int) string { return fmt.Sprintf("198.18.0.%d", 2+i) }

const extraKnockers = 8

// diffLab runs knockd 0.8 and ours side by side in one server namespace,
// both on the same interface, each in its own directory with the same
// configuration: the commands name files relative to the working
// directory ("echo door %IP% >> cmds"), so that the configurations and
// the lines the daemons print are the same text.
type diffLab struct {
	srv, cli *netlab.Netns
	dirs     [2]string
	d        [2]*daemon
}

// newDiffLab starts both daemons on conf; files are written next to it
// in each directory. before, when given, runs once the network is up and
// before the daemons start.
func newDiffLab(t *testing.T, conf string, files map[string]string, before ...func(l *diffLab, link *netlab.Veth)) *diffLab {
	t.Helper()
	requireLab(t, "ip", debianKnockd, "knock", "hping3")
	l := &diffLab{srv: netlab.NewNetns(t, "kdiff-srv"), cli: netlab.NewNetns(t, "kdiff-cli")}
	link := netlab.NewVeth(t, l.srv, l.cli, netlab.Addressing{})
	for i := 1; i <= extraKnockers; i++ {
		ipIn(t, l.cli, "addr", "add", knocker(i)+"/32", "dev", link.B.Dev)
	}
	ipIn(t, l.srv, "route", "add", "198.18.0.0/28", "dev", link.A.Dev)
	for _, f := range before {
		f(l, link)
	}
	for i := range l.dirs {
		l.dirs[i] = t.TempDir()
		writeFile(t, filepath.Join(l.dirs[i], "knockd.conf"), conf)
		for name, content := range files {
			writeFile(t, filepath.Join(l.dirs[i], name), content)
		}
	}
	l.d[deb] = startDebian(t, l.srv, l.dirs[deb], filepath.Join(l.dirs[deb], "knockd.conf"), link.A.Dev)
	l.d[our] = startOurs(t, l.srv, l.dirs[our], filepath.Join(l.dirs[our], "knockd.conf"), link.A.Dev)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_DUMP") != "" {
			for i, d := range l.d {
				t.Logf("%s output:\n%s\ncommands:\n%s", daemonNames[i], d.output(), strings.Join(l.cmds(i), "\n"))
			}
		}
	})
	return l
}

// cmds returns the commands daemon i ran, sorted: commands run in
// parallel and may finish in any order.
func (l *diffLab) cmds(i int) []string {
	c := fileLines(filepath.Join(l.dirs[i], "cmds"))
	slices.Sort(c)
	return c
}

// waitCmds waits until each daemon has run the commands listed for it
// (in any order), then makes sure no more come.
func (l *diffLab) waitCmds(t *testing.T, want [2][]string) {
	t.Helper()
	for i := range l.d {
		w := slices.Clone(want[i])
		slices.Sort(w)
		waitLines(t, "commands run by "+daemonNames[i], w, func() []string { return l.cmds(i) })
	}
	time.Sleep(settle)
	for i := range l.d {
		w := slices.Clone(want[i])
		slices.Sort(w)
		if got := l.cmds(i); !slices.Equal(got, w) {
			t.Errorf("commands run by %s, after a while:\n got  %q\n want %q", daemonNames[i], got, w)
		}
	}
}

// same waits until both daemons ran the commands in want, and checks
// that they printed the same knock lines.
func (l *diffLab) same(t *testing.T, want ...string) {
	t.Helper()
	l.waitCmds(t, [2][]string{want, want})
	l.sameLines(t)
}

// sameLines checks that both daemons printed the same lines about knocks
// (in the same order) and commands (in any order: knockd prints those
// from its forked children), sequence timeouts aside.
func (l *diffLab) sameLines(t *testing.T) {
	t.Helper()
	var parent, child [2][]string
	for i, d := range l.d {
		parent[i], child[i] = splitLines(knockLines(d.output(), false))
	}
	if !slices.Equal(parent[deb], parent[our]) {
		t.Errorf("knock lines differ:\n%s", sideBySide(parent))
	}
	if !slices.Equal(child[deb], child[our]) {
		t.Errorf("command lines differ:\n%s", sideBySide(child))
	}
}

// splitLines separates the stage lines from the lines about commands,
// which it sorts.
func splitLines(lines []string) (stages, commands []string) {
	for _, l := range lines {
		if strings.Contains(l, ": running command: ") || strings.HasSuffix(l, ": command timeout") {
			commands = append(commands, l)
		} else {
			stages = append(stages, l)
		}
	}
	slices.Sort(commands)
	return stages, commands
}

func sideBySide(l [2][]string) string {
	var b strings.Builder
	for i := 0; i < max(len(l[0]), len(l[1])); i++ {
		var a, c string
		if i < len(l[0]) {
			a = l[0][i]
		}
		if i < len(l[1]) {
			c = l[1][i]
		}
		mark := "  "
		if a != c {
			mark = "≠ "
		}
		fmt.Fprintf(&b, "%s%-45s | %s\n", mark, a, c)
	}
	return fmt.Sprintf("  %-45s | %s\n%s", daemonNames[0], daemonNames[1], b.String())
}

// hp sends hping3 knocks (see hping) from src to the server.
func (l *diffLab) hp(t *testing.T, src string, specs ...string) {
	t.Helper()
	for _, s := range specs {
		if src == cliIP {
			src = ""
		}
		hping(t, l.cli, src, srvIP, s)
	}
}

// lines returns daemon i's knock lines containing s, timeouts included.
func (l *diffLab) lines(i int, s string) []string { return linesWith(l.d[i].output(), s) }

// adaptTutorial returns the tutorial's configuration file configs/name
// with each command replaced by one that appends "DOOR IP" (or "DOOR-stop
// IP") to ./cmds, Cmd_Timeout shortened to 2 s, UseSyslog replaced by a
// log file, and the one-time sequence file looked for in the working
// directory. Ports, protocols, flags and timeouts stay as they are.
func adaptTutorial(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", name))
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile(`^\s*\[(.+)\]\s*$`)
	key := regexp.MustCompile(`(?i)^(\s*)(start_command|command|stop_command|cmd_timeout|one_time_sequences)\s*=`)
	var out []string
	door := ""
	for _, line := range strings.Split(string(b), "\n") {
		if m := section.FindStringSubmatch(line); m != nil {
			door = m[1]
		}
		if strings.EqualFold(strings.TrimSpace(line), "UseSyslog") {
			line = "logfile = daemon.log"
		}
		if m := key.FindStringSubmatch(line); m != nil {
			switch strings.ToLower(m[2]) {
			case "start_command", "command":
				line = m[1] + m[2] + " = echo " + door + " %IP% >> cmds"
			case "stop_command":
				line = m[1] + m[2] + " = echo " + door + "-stop %IP% >> cmds"
			case "cmd_timeout":
				line = m[1] + m[2] + " = 2"
			case "one_time_sequences":
				line = m[1] + m[2] + " = sequences.seq"
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// TestDifferentialKnockd runs Debian's knockd 0.8 and ours (raw backend)
// on the same interface at the same time, with the same configuration,
// and replays the same knocks at both: the tutorial's examples, wrong
// ports, doors sharing ports, timeouts, interleaved knockers. Where
// DESIGN.md lists no difference it checks that both ran the same commands
// with the same arguments and printed the same lines; where it lists one
// it checks that difference, both ways.
func TestDifferentialKnockd(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip", debianKnockd, "knock", "hping3")
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"tutorial-ssh", diffTutorialSSH},
		{"tutorial-openclose", diffTutorialOpenClose},
		{"tutorial-ftp", diffTutorialFTP},
		{"tutorial-onetime", diffTutorialOneTime},
		{"wrong and shared ports", diffWrongAndSharedPorts},
		{"timeout", diffTimeout},
		{"repeated knock", diffRepeatedKnock},
		{"interleaved knockers", diffInterleaved},
		{"ending knock starts a new attempt", diffEndingKnockStarts},
		{"bad configuration on SIGHUP", diffBadReload},
		{"new configuration on SIGHUP", diffGoodReload},
		{"knock to another interface's address", diffOtherInterfaceAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

// diffTutorialSSH: the first example, open on 7000,8000,9000 and close on
// the reverse, knocked with knock 0.8, ours and hping3, over IPv4 and
// IPv6 (Debian's knockd 0.8 handles IPv6 too).
func diffTutorialSSH(t *testing.T) {
	l := newDiffLab(t, adaptTutorial(t, "tutorial-ssh.conf"), nil)
	knockFrom(t, l.cli, "knock", srvIP, "7000", "8000", "9000")
	knockFrom(t, l.cli, knockBin, srvIP, "9000", "8000", "7000")
	knockFrom(t, l.cli, knockBin, srvIP6, "7000", "8000", "9000")
	knockFrom(t, l.cli, "knock", srvIP6, "9000", "8000", "7000")
	l.hp(t, knocker(1), "7000", "8000", "9000")
	l.same(t, "openSSH "+cliIP, "closeSSH "+cliIP, "openSSH "+cliIP6, "closeSSH "+cliIP6, "openSSH "+knocker(1))
}

// diffTutorialOpenClose: the second example, whose door wants SYN and ACK
// on its TCP knock: knock 0.8 (a bare SYN) cannot open it, with either
// daemon; hping3 -SA can, and the stop command follows Cmd_Timeout.
func diffTutorialOpenClose(t *testing.T) {
	l := newDiffLab(t, adaptTutorial(t, "tutorial-openclose.conf"), nil)
	knockFrom(t, l.cli, "knock", srvIP, "2222:udp", "3333:tcp", "4444:udp")
	l.waitCmds(t, [2][]string{nil, nil})
	l.hp(t, cliIP, "2222/udp", "3333/SA", "4444/udp")
	l.same(t, "opencloseSSH "+cliIP, "opencloseSSH-stop "+cliIP)
	for i := range l.d {
		if got := l.lines(i, cliIP+": opencloseSSH: command timeout"); len(got) != 1 {
			t.Errorf("%s: want one command timeout line, got %q", daemonNames[i], got)
		}
	}
}

// diffTutorialFTP: the last example, four knocks mixing TCP and UDP for
// each of five doors.
func diffTutorialFTP(t *testing.T) {
	l := newDiffLab(t, adaptTutorial(t, "tutorial-ftp.conf"), nil)
	knockFrom(t, l.cli, knockBin, srvIP, "23077", "12044:udp", "13001", "42967:udp")
	knockFrom(t, l.cli, "knock", srvIP, "44295", "50155:udp", "11932", "24085:udp")
	l.hp(t, knocker(1), "23078", "12045/udp", "13002", "42968/udp")
	knockFrom(t, l.cli, "knock", srvIP6, "44296", "50156:udp", "11933", "24086:udp")
	knockFrom(t, l.cli, knockBin, srvIP, "23654", "50443:udp", "20978", "31855:udp")
	l.same(t, "openFTP "+cliIP, "openWEBMIN "+cliIP, "closeFTP "+knocker(1), "closeWEBMIN "+cliIP6, "REBOOT "+cliIP)
}

// diffTutorialOneTime: the third example, with the tutorial's file of two
// one-time sequences. Both daemons open on the first, refuse it the second
// time, and mark it used in the file the same way. On the second and last
// sequence both open and disable the door; then knockd crashes (double
// free, a deliberate difference) while ours goes on serving the other
// door.
func diffTutorialOneTime(t *testing.T) {
	seq, err := os.ReadFile(filepath.Join("..", "..", "configs", "sequences.seq"))
	if err != nil {
		t.Fatal(err)
	}
	l := newDiffLab(t, adaptTutorial(t, "tutorial-onetime.conf"), map[string]string{"sequences.seq": string(seq)})
	knockFrom(t, l.cli, "knock", srvIP, "6110", "6120", "6130")
	l.waitCmds(t, [2][]string{{"openHello " + cliIP}, {"openHello " + cliIP}})
	knockFrom(t, l.cli, knockBin, srvIP, "6110", "6120", "6130")
	knockFrom(t, l.cli, knockBin, srvIP, "9100", "9500", "9900")
	l.same(t, "openHello "+cliIP, "closeHello "+cliIP)
	for i := range l.dirs {
		b, _ := os.ReadFile(filepath.Join(l.dirs[i], "sequences.seq"))
		if want := "#" + string(seq[1:]); string(b) != want {
			t.Errorf("%s: sequences.seq after one use:\n%q\nwant %q", daemonNames[i], b, want)
		}
	}

	// The last sequence.
	knockFrom(t, l.cli, "knock", srvIP, "6140", "6150", "6160")
	for i, d := range l.d {
		waitOutput(t, d, "no more sequences left in the one time sequences file for door openHello --> disabling the door", 1)
		b, _ := os.ReadFile(filepath.Join(l.dirs[i], "sequences.seq"))
		if n := strings.Count(string(b), "#"); n != 2 {
			t.Errorf("%s: sequences.seq after both uses:\n%q\nwant both lines marked", daemonNames[i], b)
		}
	}
	select {
	case <-l.d[deb].done:
		t.Logf("knockd 0.8 crashed as expected when its one-time sequences ran out (%v)", l.d[deb].waited)
	case <-time.After(5 * time.Second):
		t.Errorf("knockd 0.8 was expected to crash (double free) when its one-time sequences ran out; it is still running:\n%s", l.d[deb].output())
	}
	if l.d[our].exited() {
		t.Fatalf("ours exited when the one-time sequences ran out (%v)", l.d[our].waited)
	}
	knockFrom(t, l.cli, knockBin, srvIP, "9100", "9500", "9900")
	knockFrom(t, l.cli, knockBin, srvIP, "6140", "6150", "6160")
	l.waitCmds(t, [2][]string{
		{"openHello " + cliIP, "closeHello " + cliIP, "openHello " + cliIP},
		{"openHello " + cliIP, "closeHello " + cliIP, "openHello " + cliIP, "closeHello " + cliIP},
	})
}

// sharedDoors: d1 and d2 share their first port, d3 knocks on two of d1's
// ports in reverse order.
const sharedDoors = `[d1]
	sequence = 7001,7002:udp,7003
	seq_timeout = 5
	command = echo d1 %IP% >> cmds
[d2]
	sequence = 7001,7005
	seq_timeout = 5
	command = echo d2 %IP% >> cmds
[d3]
	sequence = 7003,7002:udp
	seq_timeout = 5
	command = echo d3 %IP% >> cmds
`

// diffWrongAndSharedPorts: knocks on ports no door watches, on a watched
// port with the other protocol, wrong ports in the middle of a sequence,
// and doors sharing ports; each script from its own knocker. Wrong ports
// here are never a door's first port (that case differs, see
// diffEndingKnockStarts).
func diffWrongAndSharedPorts(t *testing.T) {
	l := newDiffLab(t, sharedDoors, nil)
	scripts := [][]string{
		{"7001", "7009", "7002/udp", "7003"},     // unwatched port in the middle: d1
		{"7001", "7002", "7002/udp", "7003"},     // the right port over TCP: unwatched, d1
		{"7001", "7003/udp", "7002/udp", "7003"}, // 7003 over UDP: unwatched, d1
		{"7001", "7005"},                         // the sibling of d1: d2
		{"7003", "7002/udp"},                     // d3
		{"7001", "7002/udp", "7005", "7003"},     // wrong port: nothing (7003 starts d3)
		{"7001/F", "7002/udp", "7003/SA"},        // flags don't matter without tcpflags: d1
		{"7002/udp", "7005", "7003/udp"},         // no first knock: nothing
	}
	var want []string
	for i, s := range scripts {
		src := knocker(i)
		l.hp(t, src, s...)
		switch i {
		case 0, 1, 2, 6:
			want = append(want, "d1 "+src)
		case 3:
			want = append(want, "d2 "+src)
		case 4:
			want = append(want, "d3 "+src)
		}
	}
	l.same(t, want...)
}

// diffTimeout: a knocker stops half-way. Ours reports the sequence
// timeout when Seq_Timeout has passed; knockd only when a later packet
// arrives (deliberate difference). Knocks after the timeout do not
// complete the old attempt with either; a fresh sequence opens with both.
func diffTimeout(t *testing.T) {
	l := newDiffLab(t, `[t]
	sequence = 7001,7002,7003
	seq_timeout = 2
	command = echo t %IP% >> cmds
`, nil)
	timeout := cliIP + ": t: sequence timeout (stage 2)"
	l.hp(t, cliIP, "7001", "7002")
	start := time.Now()
	time.Sleep(time.Second)
	for i := range l.d {
		if got := l.lines(i, "timeout"); len(got) != 0 {
			t.Errorf("%s: timeout before Seq_Timeout: %q", daemonNames[i], got)
		}
	}
	waitOutput(t, l.d[our], timeout, 1)
	if el := time.Since(start); el > 3500*time.Millisecond {
		t.Errorf("ours reported the timeout %v after the first knock, want about 2s", el)
	}
	time.Sleep(time.Second)
	if got := l.lines(deb, "timeout"); len(got) != 0 {
		t.Errorf("knockd 0.8 reported a timeout without further traffic (DESIGN.md says it cannot): %q", got)
	}
	l.hp(t, cliIP, "7003")
	waitOutput(t, l.d[deb], timeout, 1)
	l.waitCmds(t, [2][]string{nil, nil})
	for i := range l.d {
		if got := l.lines(i, "timeout"); !slices.Equal(got, []string{timeout}) {
			t.Errorf("%s: timeout lines %q, want %q once", daemonNames[i], got, timeout)
		}
	}
	l.hp(t, cliIP, "7001", "7002", "7003")
	l.same(t, "t "+cliIP)
}

// diffRepeatedKnock: a knock sent twice (a retransmitted SYN, knock run
// twice) resets knockd's attempt; ours ignores the repeat (deliberate
// difference).
func diffRepeatedKnock(t *testing.T) {
	l := newDiffLab(t, sharedDoors, nil)
	l.hp(t, cliIP, "7001", "7001", "7002/udp", "7003")
	knockFrom(t, l.cli, "knock", srvIP6, "7001")
	knockFrom(t, l.cli, "knock", srvIP6, "7001", "7002:udp")
	knockFrom(t, l.cli, "knock", srvIP6, "7003")
	l.waitCmds(t, [2][]string{nil, {"d1 " + cliIP, "d1 " + cliIP6}})
	for _, ip := range []string{cliIP, cliIP6} {
		if got, want := l.lines(deb, ip+": d1: "), []string{ip + ": d1: Stage 1"}; !slices.Equal(got, want) {
			t.Errorf("knockd 0.8, knocker %s: %q, want %q (the repeat resets it)", ip, got, want)
		}
		if got, want := l.lines(our, ip+": d1: "), []string{ip + ": d1: Stage 1", ip + ": d1: Stage 2", ip + ": d1: Stage 3", ip + ": d1: OPEN SESAME"}; !slices.Equal(got, want) {
			t.Errorf("ours, knocker %s: %q, want %q", ip, got, want)
		}
	}
}

// diffInterleaved: two knockers knock the same sequence at the same time.
// When the first one's attempt ends, knockd drops every other attempt in
// progress, so the second never gets in; ours opens for both (deliberate
// difference).
func diffInterleaved(t *testing.T) {
	l := newDiffLab(t, sharedDoors, nil)
	a, b := knocker(0), knocker(1)
	for _, k := range []string{"7001", "7002/udp", "7003"} {
		l.hp(t, a, k)
		l.hp(t, b, k)
	}
	l.waitCmds(t, [2][]string{{"d1 " + a}, {"d1 " + a, "d1 " + b}})
	if got, want := l.lines(deb, b+": d1: "), []string{b + ": d1: Stage 1", b + ": d1: Stage 2"}; !slices.Equal(got, want) {
		t.Errorf("knockd 0.8, second knocker: %q, want %q", got, want)
	}
	if got := l.lines(our, b+": d1: "); len(got) != 4 || got[3] != b+": d1: OPEN SESAME" {
		t.Errorf("ours, second knocker: %q, want three stages and OPEN SESAME", got)
	}
	// Both agree on the first knocker.
	if d, o := l.lines(deb, a+": d1: "), l.lines(our, a+": d1: "); !slices.Equal(d, o) {
		t.Errorf("first knocker: knockd 0.8 %q, ours %q", d, o)
	}
}

// diffEndingKnockStarts: a wrong knock that is another door's first knock
// ends the attempt and, with ours, starts that door (deliberate
// difference: "the knock that ends an attempt may start a new one");
// knockd only drops the attempt.
func diffEndingKnockStarts(t *testing.T) {
	l := newDiffLab(t, sharedDoors, nil)
	l.hp(t, cliIP, "7001", "7003", "7002/udp")
	l.waitCmds(t, [2][]string{nil, {"d3 " + cliIP}})
	if got, want := l.lines(deb, cliIP+": "), []string{cliIP + ": d1: Stage 1", cliIP + ": d2: Stage 1"}; !slices.Equal(got, want) {
		t.Errorf("knockd 0.8: %q, want %q", got, want)
	}
	if got, want := l.lines(our, cliIP+": "), []string{cliIP + ": d1: Stage 1", cliIP + ": d2: Stage 1", cliIP + ": d3: Stage 1", cliIP + ": d3: Stage 2", cliIP + ": d3: OPEN SESAME"}; !slices.Equal(got, want) {
		t.Errorf("ours: %q, want %q", got, want)
	}
}

// diffBadReload: a configuration broken while running, then SIGHUP:
// knockd exits; ours logs the error and keeps the running configuration
// (deliberate difference).
func diffBadReload(t *testing.T) {
	l := newDiffLab(t, sharedDoors, nil)
	l.hp(t, cliIP, "7001", "7005")
	l.same(t, "d2 "+cliIP)
	l.reload(t, sharedDoors+"\tfoo = bar\n")
	select {
	case <-l.d[deb].done:
		var ee *exec.ExitError
		if !errors.As(l.d[deb].waited, &ee) || ee.ExitCode() != 1 {
			t.Errorf("knockd 0.8 exited with %v, want status 1", l.d[deb].waited)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("knockd 0.8 was expected to exit on a bad configuration at SIGHUP:\n%s", l.d[deb].output())
	}
	waitOutput(t, l.d[our], "keeping the running configuration", 1)
	l.hp(t, knocker(1), "7001", "7005")
	l.waitCmds(t, [2][]string{{"d2 " + cliIP}, {"d2 " + cliIP, "d2 " + knocker(1)}})
}

// reload writes conf for both daemons and sends them SIGHUP.
func (l *diffLab) reload(t *testing.T, conf string) {
	t.Helper()
	for i, d := range l.d {
		writeFile(t, filepath.Join(l.dirs[i], "knockd.conf"), conf)
		n := strings.Count(d.output(), "re-reading config file")
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitOutput(t, d, "re-reading config file", n+1)
	}
}

// diffGoodReload: a new configuration on SIGHUP moves a door to new
// ports; both daemons follow (ours replaces its BPF program on the live
// sockets, knockd its pcap filter).
func diffGoodReload(t *testing.T) {
	l := newDiffLab(t, sharedDoors, nil)
	l.hp(t, cliIP, "7001", "7005")
	l.waitCmds(t, [2][]string{{"d2 " + cliIP}, {"d2 " + cliIP}})
	l.reload(t, strings.Replace(sharedDoors, "sequence = 7001,7005", "sequence = 7011,7015:udp", 1))
	time.Sleep(settle)
	l.hp(t, knocker(1), "7001", "7005")
	l.hp(t, knocker(2), "7011", "7015/udp")
	l.same(t, "d2 "+cliIP, "d2 "+knocker(2))
}

// diffOtherInterfaceAddress: a knock arrives on the watched interface
// addressed to one of the server's addresses that sits on another
// interface (here lo). knockd 0.8 counts only knocks to the addresses of
// the interface it listens on, so it ignores it; ours counts knocks to any
// of the host's addresses, as DESIGN.md's matching rules say ("Only
// packets to the host's own addresses count"). DESIGN.md does not list
// this as a difference from knockd: the test records what both do.
func diffOtherInterfaceAddress(t *testing.T) {
	const elsewhere = "198.18.5.1"
	l := newDiffLab(t, sharedDoors, nil, func(l *diffLab, link *netlab.Veth) {
		ipIn(t, l.srv, "addr", "add", elsewhere+"/32", "dev", "lo")
		ipIn(t, l.cli, "route", "add", elsewhere+"/32", "via", srvIP, "dev", link.B.Dev)
	})
	knockFrom(t, l.cli, knockBin, elsewhere, "7001", "7005")
	l.waitCmds(t, [2][]string{nil, {"d2 " + cliIP}})
	if got := l.lines(deb, cliIP+": "); len(got) != 0 {
		t.Errorf("knockd 0.8 counted knocks to %s, an address of another interface: %q", elsewhere, got)
	}
	// A knock to the interface's own address: both.
	knockFrom(t, l.cli, knockBin, srvIP, "7001", "7005")
	l.waitCmds(t, [2][]string{{"d2 " + cliIP}, {"d2 " + cliIP, "d2 " + cliIP}})
}

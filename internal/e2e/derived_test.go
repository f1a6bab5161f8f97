package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
	"github.com/knock-go/knock/seqderive"
)

// derivedStep is the Sequence_Step of the end-to-end door: short, so
// that the test sees steps pass, and long enough that a knock sent for
// one step is still in the window on a loaded machine.
const derivedStep = 5

// TestDerivedSequences is issue 13 end to end, on both backends: a
// time-derived door in a server namespace, two client namespaces (two
// source addresses). Our client opens it; Debian's knock, given the
// ports knock --print prints, opens it; the same ports again, from the
// same or the other source, and after a restart of knockd, open nothing
// and are logged as a replay; a sequence from three steps ago opens
// nothing; the next step's sequence opens.
func TestDerivedSequences(t *testing.T) {
	netlab.Require(t)
	for _, tc := range []struct{ backend, proto string }{
		{"raw", "tcp"},
		// The listener counts a TCP knock once its handshake completes,
		// which knock 0.8 does not wait for: UDP knocks suit both.
		{"listener", "udp"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			t.Parallel()
			derivedCase(t, tc.backend, tc.proto)
		})
	}
}

func derivedCase(t *testing.T, backend, proto string) {
	server := netlab.NewNetns(t, "ktotp-srv")
	cliA := netlab.NewNetns(t, "ktotp-a")
	cliB := netlab.NewNetns(t, "ktotp-b")
	la := netlab.NewVeth(t, cliA, server, netlab.Addressing{NoIPv6: true})
	lb := netlab.NewVeth(t, cliB, server, netlab.Addressing{NoIPv6: true,
		A: netip.MustParseAddr("198.18.1.1"), B: netip.MustParseAddr("198.18.1.2")})
	hostA, hostB := la.B.Addr.String(), lb.B.Addr.String()
	srcA, srcB := la.A.Addr.String(), lb.A.Addr.String()

	dir := t.TempDir()
	secret := filepath.Join(dir, "ssh.secret")
	if err := os.WriteFile(secret, []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "commands")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[totp]
	Sequence_Secret = %s
	Sequence_Step = %d
	Sequence_Proto = %s
	Seq_Timeout = 5
	Start_Command = echo open %%IP%% >> %s
`, secret, derivedStep, proto, out))
	state := filepath.Join(dir, "state")
	start := func() *daemon {
		d := startDaemon(t, []string{"ip", "netns", "exec", server.Name()},
			"-c", conf, "-v", "-D", "--backend", backend, "--state-dir", state)
		if ready := "listening on any..."; !strings.Contains(d.output(), ready) {
			d.waitLine(ready)
		}
		return d
	}
	d := start()

	derive := []string{"--secret-file", secret, "--step", fmt.Sprint(derivedStep), "--proto", proto}
	// printed returns the ports knock --print gives for time at.
	printed := func(host string, at int64) []string {
		t.Helper()
		args := append([]string{"--print", "--time", fmt.Sprint(at)}, derive...)
		f := strings.Fields(cliA.Run(t, knockBin, append(args, host)...))
		if len(f) != 4 || f[0] != host {
			t.Fatalf("knock --print: %q, want the host and 3 ports", f)
		}
		return f[1:]
	}
	// opened waits for the nth command in all and the nth opening
	// logged by this run of knockd.
	opened := func(n, logged int) {
		t.Helper()
		waitOutput(t, d, "OPEN SESAME", logged)
		deadline := time.Now().Add(15 * time.Second)
		for b, _ := os.ReadFile(out); strings.Count(string(b), "open ") < n; b, _ = os.ReadFile(out) {
			if time.Now().After(deadline) {
				t.Fatalf("%d commands ran, want %d:\n%s", strings.Count(string(b), "open "), n, d.output())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	noMoreOpenings := func(n int, what string) {
		t.Helper()
		if got := strings.Count(d.output(), "OPEN SESAME"); got != n {
			t.Fatalf("%s: %d openings, want %d:\n%s", what, got, n, d.output())
		}
	}

	// Start at the beginning of a step, so that the steps below are
	// where the test expects them.
	for time.Now().Unix()%derivedStep != 0 {
		time.Sleep(50 * time.Millisecond)
	}
	t1 := time.Now().Unix()
	c1 := seqderive.Counter(time.Unix(t1, 0), derivedStep*time.Second)

	// 1. Our client, for now.
	cliA.Run(t, knockBin, append(append([]string{"--time", fmt.Sprint(t1)}, derive...), hostA)...)
	opened(1, 1)

	// 2. Debian's knock 0.8 (ours where it is not installed), with the
	// ports knock --print gives for the next step.
	ports := printed(hostA, t1+derivedStep)
	client := "/usr/bin/knock"
	if _, err := os.Stat(client); err != nil {
		t.Logf("Debian's knock is not installed (%v): sending the printed ports with ours", err)
		client = knockBin
	}
	cliA.Run(t, client, append([]string{hostA}, ports...)...)
	opened(2, 2)

	// 3. The same ports again, right after, from the same source and
	// from the other: a replay, logged, nothing opened.
	replay := fmt.Sprintf("totp: used sequence replayed (step %d): nothing opened", c1+1)
	// replayed sends the ports from ns to host and waits for the replay
	// line; once step c1+1 has left the window (on a machine so slow
	// that this took over 10 s), knockd no longer watches its ports and
	// only the count of openings below can tell.
	replayed := func(ns *netlab.Netns, host, src string) {
		t.Helper()
		inWindow := seqderive.Counter(time.Now().Add(time.Second), derivedStep*time.Second) <= c1+2
		ns.Run(t, client, append([]string{host}, ports...)...)
		if inWindow {
			d.waitLine(src + ": " + replay)
		} else {
			t.Logf("step %d has left the window: no replay line to wait for", c1+1)
		}
	}
	replayed(cliA, hostA, srcA)
	replayed(cliB, hostB, srcB)
	noMoreOpenings(2, "replays")

	// 4. After a restart, still nothing.
	d.stop()
	if d.waited != nil && !strings.Contains(d.waited.Error(), "signal") {
		t.Fatalf("knockd exited with %v:\n%s", d.waited, d.output())
	}
	restarted := time.Now()
	d = start()
	replayed(cliB, hostB, srcB)
	noMoreOpenings(0, "a replay after the restart")

	// 5. The sequence of three steps ago opens nothing, and 6. the next
	// step's opens, once the clock has passed the step used in 2.
	cliA.Run(t, knockBin, append(append([]string{"--time", fmt.Sprint(t1 - 3*derivedStep)}, derive...), hostA)...)
	for seqderive.Counter(time.Now(), derivedStep*time.Second) <= c1 {
		time.Sleep(50 * time.Millisecond)
	}
	// knockd's timer may fire a moment after the test's clock says the
	// step began: "next" is the step after knockd's current one.
	now := time.Now()
	if cur := seqderive.Counter(now, derivedStep*time.Second); seqderive.Counter(restarted, derivedStep*time.Second) < cur {
		d.waitLine(fmt.Sprintf("door totp: now at step %d", cur))
	}
	next := now.Unix() + derivedStep
	cliA.Run(t, knockBin, append(append([]string{"--time", fmt.Sprint(next)}, derive...), hostA)...)
	opened(3, 1)
	noMoreOpenings(1, "three steps ago, then the next step")
	if got := strings.Count(readFile(t, out), "open "); got != 3 {
		t.Errorf("%d openings in all, want 3:\n%s", got, readFile(t, out))
	}
	if b, err := os.ReadDir(state); err != nil || !hasPrefix(b, "steps-") {
		t.Errorf("the state directory holds no record of the used steps: %v", err)
	}
}

func hasPrefix(ents []os.DirEntry, prefix string) bool {
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			return true
		}
	}
	return false
}

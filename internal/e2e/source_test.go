package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knock-go/knock/rawsock"
)

// TestSourceAndMaxAttemptsOnReload runs the daemon on each backend with a
// door limited to 127.0.4.0/24 (the Source key) beside a door that is
// not, sharing its second port: knocks from 127.0.3.1 count for nothing
// on the limited door, knocks from inside its list open it. Then a
// SIGHUP lowers MaxAttempts to 1, and three new attempts must push out
// two, which the log summarises.
func TestSourceAndMaxAttemptsOnReload(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"listener", "raw"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "raw" {
				if err := rawsock.Available(); err != nil {
					t.Skipf("skipping the raw backend: %v", err)
				}
			}
			dir := t.TempDir()
			p := freePorts(t, 3)
			out := filepath.Join(dir, "commands")
			conf := filepath.Join(dir, "knockd.conf")
			doors := fmt.Sprintf("[lan]\n\tsequence = %d:udp,%d:udp\n\tsource = 127.0.4.0/24, 2001:db8::/32\n\tcommand = echo lan %%IP%% >> %s\n"+
				"[open]\n\tsequence = %d:udp,%d:udp\n\tcommand = echo open %%IP%% >> %s\n", p[0], p[1], out, p[2], p[1], out)
			writeFile(t, conf, doors)
			d := startDaemon(t, nil, "-c", conf, "-v", "-i", "lo", "--backend", backend, "--state-dir", filepath.Join(dir, "state"))

			// From outside the list: nothing on lan; its knock on the
			// shared port still counts for open.
			udpKnock(t, "127.0.3.1", p[0])
			udpKnock(t, "127.0.3.1", p[1])
			udpKnock(t, "127.0.3.1", p[2])
			udpKnock(t, "127.0.3.1", p[1])
			waitFile(t, out, "open 127.0.3.1\n")
			// From inside it, lan opens.
			udpKnock(t, "127.0.4.1", p[0])
			udpKnock(t, "127.0.4.1", p[1])
			got := waitFile(t, out, "lan 127.0.4.1\n")
			if strings.Contains(got, "lan 127.0.3.1") || strings.Contains(d.output(), "127.0.3.1: lan:") {
				t.Errorf("a knock from outside lan's Source counted on it:\n%s", d.output())
			}

			writeFile(t, conf, "[options]\n\tMaxAttempts = 1\n"+doors)
			d.cmd.Process.Signal(syscall.SIGHUP)
			waitOutput(t, d, "re-reading config file", 1)
			// The reload is done once a knock after it is logged.
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(d.output(), "127.0.4.9: lan: Stage 1") {
				if time.Now().After(deadline) {
					t.Fatalf("no knock logged after the reload:\n%s", d.output())
				}
				udpKnock(t, "127.0.4.9", p[0])
				time.Sleep(50 * time.Millisecond)
			}
			for _, src := range []string{"127.0.4.2", "127.0.4.3"} {
				udpKnock(t, src, p[0])
			}
			waitOutput(t, d, "127.0.4.3: lan: Stage 1", 1)
			// Summed, in case the two fall in two seconds.
			evicted := 0
			for deadline := time.Now().Add(15 * time.Second); evicted < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				evicted = 0
				for _, m := range evictedRE.FindAllStringSubmatch(d.output(), -1) {
					n, _ := strconv.Atoi(m[1])
					evicted += n
				}
			}
			if evicted != 2 {
				t.Errorf("%d evictions logged, want 2 with MaxAttempts = 1 after the reload:\n%s", evicted, d.output())
			}
		})
	}
}

var evictedRE = regexp.MustCompile(`(\d+) knock attempts evicted in the last second`)

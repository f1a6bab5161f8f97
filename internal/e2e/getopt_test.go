package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/internal/netlab"
)

// TestGetoptFormsLikeKnockd08 starts Debian's knockd 0.8 and ours side by
// side on the loopback of a namespace of their own, each with the same
// command line in one of getopt_long's forms, knocks once, and compares
// what they print for the door: each form must reach -v, -i and -c as 0.8
// reads them (a misread -i shows as a daemon that never listens on lo).
// Ours is also given --state-dir, after the form.
func TestGetoptFormsLikeKnockd08(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip", debianKnockd)
	ns := netlab.NewNetns(t, "kgetopt")
	const conf = "[options]\n[door]\nsequence = 47001:udp,47002:tcp\nseq_timeout = 10\ncommand = /bin/true %IP%\n"
	want := []string{
		"127.0.0.1: door: Stage 1",
		"127.0.0.1: door: Stage 2",
		"127.0.0.1: door: OPEN SESAME",
		"door: running command: /bin/true 127.0.0.1",
	}
	for _, form := range []string{
		"-vilo -c{c}",
		"--verb --inter=lo --conf {c}",
		"-c {c} stray -i lo -v",
		"-4vc{c} --interface lo",
	} {
		var dirs, out [2]string
		var d [2]*daemon
		for i := range dirs {
			dirs[i] = t.TempDir()
			c := filepath.Join(dirs[i], "knockd.conf")
			writeFile(t, c, conf)
			args := strings.Fields(strings.ReplaceAll(form, "{c}", c))
			if i == deb {
				d[i] = startIn(t, ns, dirs[i], "listening on lo...", append([]string{debianKnockd}, args...)...)
			} else {
				d[i] = startIn(t, ns, dirs[i], "listening on lo...", append(append([]string{knockdBin}, args...), "--state-dir", filepath.Join(dirs[i], "state"))...)
			}
		}
		ns.Run(t, knockBin, "127.0.0.1", "47001:udp", "47002")
		for i := range d {
			d[i].waitLine("door: running command: ")
			d[i].stop()
			out[i] = d[i].output()
		}
		if diff := cmp.Diff(want, knockLines(out[deb], true)); diff != "" {
			t.Fatalf("knockd 0.8 %s (-expected +printed):\n%s", form, diff)
		}
		if diff := cmp.Diff(knockLines(out[deb], true), knockLines(out[our], true)); diff != "" {
			t.Errorf("knockd %s (-knockd 0.8 +ours):\n%s\nours printed:\n%s", form, diff, out[our])
		}
		if strings.Contains(form, "stray") && !strings.Contains(out[our], `knockd: warning: ignoring argument "stray"`) {
			t.Errorf("knockd %s: no warning for the operand:\n%s", form, out[our])
		}
	}
}

package knockd

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/control"
	"github.com/knock-go/knock/internal/metricstest"
)

const watchedDoor = `
[options]
	MetricsAddress = 127.0.0.1:0
[ssh]
	sequence = %[1]d:udp,%[1]d:udp
	seq_timeout = 60
	start_command = echo open %%IP%% >> %[2]s/cmds
	cmd_timeout = 3600
	stop_command = echo stop %%IP%% >> %[2]s/cmds
`

// waitFile waits until the file holds want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want %q", path, b, want)
		}
	}
}

func TestFakeStatusRevokeMetrics(t *testing.T) {
	t.Parallel()
	f := runFake(t, watchedDoor)
	sock := filepath.Join(f.dir, "control.sock")
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	f.knocks(f.port(), a, a)
	f.waitOut("198.18.0.2: ssh: OPEN SESAME", &f.stdout)
	cmds := filepath.Join(f.dir, "cmds")
	waitFile(t, cmds, "open 198.18.0.2\n")
	f.knocks(f.port(), b) // an attempt in progress
	f.waitOut("198.18.0.3: ssh: Stage 1", &f.stdout)

	var st *control.Status
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := control.Ask(sock, control.Request{Cmd: control.CmdStatus})
		if err != nil || resp.Status == nil {
			t.Fatalf("status: %+v, %v", resp, err)
		}
		if st = resp.Status; len(st.Openings) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(st.Openings) != 1 {
		t.Fatalf("openings %+v, want a's", st.Openings)
	}
	o := st.Openings[0]
	if o.Door != "ssh" || o.Src != "198.18.0.2" || o.Close != "stop command: echo stop 198.18.0.2 >> "+cmds ||
		o.Until.Sub(o.Since) != time.Hour || time.Since(o.Since) > time.Minute {
		t.Errorf("opening %+v", o)
	}
	if len(st.Doors) != 1 || st.Doors[0].Name != "ssh" || st.Doors[0].Openings != 1 || st.Doors[0].Stages != 3 || st.Doors[0].SeqTimeout != 60 {
		t.Errorf("doors %+v", st.Doors)
	}
	if st.Attempts.InProgress != 1 || len(st.Attempts.List) != 1 || st.Attempts.List[0].Src != "198.18.0.3" || st.Attempts.List[0].Stage != 1 {
		t.Errorf("attempts %+v", st.Attempts)
	}
	if st.Backend != "fake" || st.Counters.Openings != 1 || st.Counters.CommandsStarted != 1 {
		t.Errorf("status %+v", st)
	}
	var text bytes.Buffer
	WriteStatus(&text, st)
	for _, want := range []string{`(?m)^ssh +198\.18\.0\.2 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \((now|\d+s ago)\) +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in (1h0m0s|59m\d+s)\) +stop command: echo stop 198\.18\.0\.2`,
		`Attempts in progress: 1 `, `(?m)^ssh +198\.18\.0\.3 +1 `} {
		if !regexp.MustCompile(want).MatchString(text.String()) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
	}

	m := regexp.MustCompile(`metrics: serving (http://\S+/metrics)`).FindStringSubmatch(f.stdout.String())
	if m == nil {
		t.Fatalf("no metrics line in:\n%s", f.stdout.String())
	}
	fams := metricstest.Get(t, nil, m[1])
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"knockd_openings_total", []string{"door", "ssh"}, 1},
		{"knockd_stages_total", []string{"door", "ssh"}, 3},
		{"knockd_pending_openings", []string{"door", "ssh", "via", "command"}, 1},
		{"knockd_attempts_in_progress", nil, 1},
		{"knockd_commands_total", []string{"result", "started"}, 1},
	} {
		if got, ok := metricstest.Value(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if fams["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}

	// Revoke: nothing for a stranger or on another door, then a's
	// opening closes now, its stop command run once.
	if err := Client(ClientOptions{Control: sock, Revoke: "198.18.0.9"}); err == nil || !strings.Contains(err.Error(), "nothing to revoke") {
		t.Errorf("revoke of a stranger: %v", err)
	}
	if err := Client(ClientOptions{Control: sock, Revoke: "198.18.0.2", Door: "web"}); err == nil {
		t.Error("revoke on another door succeeded")
	}
	var out bytes.Buffer
	if err := Client(ClientOptions{Control: sock, Revoke: "198.18.0.2", Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "198.18.0.2: ssh: revoked") {
		t.Errorf("--revoke printed %q", out.String())
	}
	f.waitOut("198.18.0.2: ssh: revoked", &f.stdout)
	waitFile(t, cmds, "open 198.18.0.2\nstop 198.18.0.2\n")
	if err := Client(ClientOptions{Control: sock, Revoke: "198.18.0.2"}); err == nil {
		t.Error("a second revoke found something")
	}
	if err := f.stop(); err != nil {
		t.Fatal(err)
	}
	// Not again at shutdown.
	if b, _ := os.ReadFile(cmds); string(b) != "open 198.18.0.2\nstop 198.18.0.2\n" {
		t.Errorf("commands run %q: the revoked stop command ran again", b)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the control socket is left after shutdown: %v", err)
	}
	if err := Client(ClientOptions{Control: sock}); err == nil || !strings.Contains(err.Error(), "no knockd answers on "+sock) {
		t.Errorf("status with no daemon: %v", err)
	}
}

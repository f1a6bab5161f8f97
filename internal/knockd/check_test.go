package knockd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/rawsock"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// holdPort listens on TCP and UDP port 0 of every address and returns
// the port, held until the test ends.
func holdPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		if err != nil {
			l.Close()
			continue
		}
		t.Cleanup(func() { l.Close(); u.Close() })
		return port
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// TestCheckGoodConfiguration runs --check on a configuration whose ports
// this test holds: it must print every door in full, report what the
// listener would bind and need, and bind, open, create and run nothing.
func TestCheckGoodConfiguration(t *testing.T) {
	dir := t.TempDir()
	tcp, udp := holdPort(t), holdPort(t)
	marker := filepath.Join(dir, "ran")
	writeFile(t, filepath.Join(dir, "seq.seq"), "#1,2,3\n 4000:udp,5000\n")
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[options]
	LogFile = %[1]s/knockd.log
	StateDir = %[1]s/state
[openSSH]
	Sequence = %[2]d,%[3]d:udp,80
	Seq_Timeout = 7
	TCPFlags = syn,ack
	Start_Command = touch %[4]s
	Start_Command_6 = touch %[4]s.6
	Cmd_Timeout = 12
	Stop_Command = touch %[4]s.stop
	Target = 198.18.0.1
	Source = 198.18.0.0/15, 2001:db8::7
[hello]
	One_Time_Sequences = %[1]s/seq.seq
	Command = touch %[4]s
`, dir, tcp, udp, marker))

	var out, errs bytes.Buffer
	err := Run(context.Background(), Options{
		ConfigPath: conf, Backend: "listener", Check: true, Daemon: true,
		PidFile: filepath.Join(dir, "knockd.pid"), Stdout: &out, Stderr: &errs,
		Ready: func(error) { t.Error("Ready called: --check must not start the daemon") },
	})
	if err != nil {
		t.Fatalf("Run with Check: %v\nstderr:\n%s", err, errs.String())
	}
	// Columns are aligned: compare with runs of spaces squeezed.
	squeeze := regexp.MustCompile(` +`)
	report := squeeze.ReplaceAllString(out.String(), " ")
	for _, want := range []string{
		fmt.Sprintf("[openSSH] (%s:4)", conf),
		fmt.Sprintf("Sequence:        %d:tcp,%d:udp,80:tcp", tcp, udp),
		"Seq_Timeout:     7 s",
		"TCPFlags:        syn,ack",
		"Target:          198.18.0.1",
		"Start_Command:   touch " + marker,
		"Start_Command_6: touch " + marker + ".6",
		"Cmd_Timeout:     12 s",
		"Stop_Command:    touch " + marker + ".stop",
		"Stop_Command_6:  none: IPv6 knockers get Stop_Command",
		"Source:          198.18.0.0/15, 2001:db8::7/128",
		"[hello] (" + conf + ":14)",
		"Source:             any source",
		"One_Time_Sequences: " + dir + "/seq.seq",
		"current sequence: line 2: 4000:udp,5000:tcp",
		"TCPFlags:           any (no TCPFlags)",
		"Cmd_Timeout:        10 s (unused: no Stop_Command)",
		"LogFile:     " + dir + "/knockd.log",
		"backend: listener",
		fmt.Sprintf("tcp %d  openSSH", tcp),
		"on 198.18.0.1 (Target)",
		"udp 4000  hello  on every address",
		"tcp 80",
		"state: pending stop commands of openSSH are kept in " + dir + "/state (StateDir)",
		conf + ": 2 doors, no errors; nothing was bound, opened or run",
	} {
		if !strings.Contains(report, squeeze.ReplaceAllString(want, " ")) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if unprivilegedPortStart() > 80 && !strings.Contains(report, "ports below") {
		t.Errorf("report does not say that port 80 needs CAP_NET_BIND_SERVICE:\n%s", report)
	}
	if want := "warning: door openSSH: TCPFlags = syn,ack never matches on the listener backend"; !strings.Contains(errs.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errs.String())
	}
	for _, p := range []string{"knockd.log", "state", "knockd.pid", "ran", "ran.6", "ran.stop"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after --check (%v): it must create nothing", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "seq.seq")); string(b) != "#1,2,3\n 4000:udp,5000\n" {
		t.Errorf("the one-time file changed: %q", b)
	}
}

// TestCheckBadConfigurations checks that --check returns the parser's
// FILE:LINE: message for each input that knockd 0.8 accepts and ours
// rejects, with what 0.8 would have done, and prints no report.
func TestCheckBadConfigurations(t *testing.T) {
	dir := t.TempDir()
	for i, tt := range []struct {
		name, conf string
		line       int
		want       string
	}{
		{"port not a number", "[d]\nsequence = 7000,abc\n", 2, "knockd 0.8 would have read it as 7000:tcp,0:tcp"},
		{"trailing comma", "[d]\nsequence = 7000,8000,\n", 2, "knockd 0.8 would have read it as 7000:tcp,8000:tcp,0:tcp"},
		{"ports separated by a space", "[d]\nsequence = 7000 8000\n", 2, "knockd 0.8 would have read it as 7000:tcp"},
		{"timeout with a unit", "[d]\nsequence = 7000\nseq_timeout = 5s\n", 3, "knockd 0.8 would have read it as 5 seconds"},
		{"negative timeout", "[d]\nsequence = 7000\ncmd_timeout = -1\n", 3, "knockd 0.8 would have read it as -1 seconds and waited 136 years"},
		{"two doors with one name", "[d]\nsequence = 7000\n[d]\nsequence = 8000\n", 3, "knockd 0.8 would have run both doors"},
		{"flag both set and clear", "[d]\nsequence = 7000\ntcpflags = syn,!syn\n", 3, "knockd 0.8 would have kept the last mention of each flag: TCPFlags = !syn"},
		{"unknown key", "[d]\nsequence = 7000\nseq_timout = 5\n", 3, "did you mean Seq_Timeout?"},
		{"unknown flag", "[d]\nsequence = 7000\ntcpflags = syn,foo\n", 3, `unknown flag "foo"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, fmt.Sprintf("%d.conf", i))
			writeFile(t, conf, tt.conf)
			var out, errs bytes.Buffer
			err := Run(context.Background(), Options{ConfigPath: conf, Check: true, Stdout: &out, Stderr: &errs})
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Run with Check = %v, want a *config.Error", err)
			}
			if prefix := fmt.Sprintf("%s:%d: ", conf, tt.line); !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\nwant it to start with %q and contain %q", err, prefix, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("a report was printed for a bad configuration:\n%s", out.String())
			}
		})
	}
}

func TestCheckUnknownBackend(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "k.conf")
	writeFile(t, conf, "[d]\nsequence = 7000\n")
	err := Run(context.Background(), Options{ConfigPath: conf, Check: true, Backend: "pcap", Stdout: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), `unknown backend "pcap"`) {
		t.Errorf("Run = %v, want the unknown backend named", err)
	}
}

// TestCheckMissingInterface checks what --check says of an interface that
// does not exist, for each backend.
func TestCheckMissingInterface(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "k.conf")
	writeFile(t, conf, "[d]\nsequence = 7000\n")
	name := fmt.Sprintf("kmiss%d", os.Getpid()%1000000)
	for backend, want := range map[string]string{
		"raw":      "raw: interface " + name + " does not exist: the raw backend waits for it",
		"listener": "listener: interface " + name + " does not exist: start-up would fail",
	} {
		var out, errs bytes.Buffer
		if err := Run(context.Background(), Options{ConfigPath: conf, Check: true, Backend: backend, Interface: "lo," + name, Stdout: &out, Stderr: &errs}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("--backend %s: report lacks %q:\n%s", backend, want, out.String())
		}
	}
}

// TestMissingInterfaceWarning starts the raw backend on an interface that
// does not exist: it waits for it, and says so at start on standard error
// and in the log file.
func TestMissingInterfaceWarning(t *testing.T) {
	if err := rawsock.Available(); err != nil {
		t.Skipf("the raw backend is unavailable: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	logFile := filepath.Join(dir, "knockd.log")
	writeFile(t, conf, "[options]\nLogFile = "+logFile+"\n[d]\nsequence = 7000\n")
	name := fmt.Sprintf("kwait%d", os.Getpid()%1000000)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var errs bytes.Buffer
	ready := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ConfigPath: conf, Backend: "raw", Interface: name, StateDir: filepath.Join(dir, "state"),
			Stdout: &bytes.Buffer{}, Stderr: &errs, Ready: func(err error) { ready <- err },
		})
	}()
	if err := <-ready; err != nil {
		t.Fatalf("start-up failed: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "warning: interface " + name + " does not exist: waiting for it to appear (knockd 0.8 would exit)"
	if !strings.Contains(errs.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errs.String())
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "] "+want) {
		t.Errorf("log file lacks %q:\n%s", want, b)
	}
}

// TestCheckSets: --check prints a door's sets, and Cmd_Timeout as used.
func TestCheckSets(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, "[ssh]\n\tSequence = 7000\n\tCmd_Timeout = 5\n\tNFT_Set = inet knockd ssh4\n\tIPSet_6 = knock6\n")
	var out, errs bytes.Buffer
	if err := Run(context.Background(), Options{ConfigPath: conf, Backend: "listener", Check: true, Stdout: &out, Stderr: &errs}); err != nil {
		t.Fatalf("Run: %v\n%s", err, errs.String())
	}
	for _, want := range []string{
		"Cmd_Timeout:     5 s\n",
		"NFT_Set:         nft set inet knockd ssh4, each knocker for Cmd_Timeout (the kernel closes it)\n",
		"NFT_Set_6:       none: IPv6 knockers are added to no set\n",
		"IPSet:           none: IPv4 knockers are added to no ipset\n",
		"IPSet_6:         ipset knock6, each knocker for Cmd_Timeout (the kernel closes it)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--check output does not hold %q:\n%s", want, out.String())
		}
	}
}

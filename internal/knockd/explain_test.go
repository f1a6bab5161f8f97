package knockd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/capture/capturetest"
)

// With -D and --log-format json, the daemon dumps its configuration and
// explains a wrong knock and a timeout, every -v and -D line one JSON
// object.
func TestDebugExplainsInJSON(t *testing.T) {
	t.Parallel()
	f := &fakeDaemon{}
	opts := Options{Debug: true, LogFormat: "json", NewSource: func(spec capture.Spec, _ func(string, ...any)) (capture.Source, error) {
		f.src = capturetest.NewSource(spec)
		return f.src, nil
	}}
	f.testDaemon = runDaemon(t, `
[d]
	sequence = %[1]d:udp,%[1]d:tcp
	seq_timeout = 1
	command = true
[e]
	sequence = 9:udp,10:udp
	seq_timeout = 1
	command = true
`, opts)
	a := netip.MustParseAddr("198.18.0.3")
	f.knocks(f.port(), a)
	f.knocks(9, a)
	f.waitOut(`"event":"timeout"`, &f.stdout)
	f.waitOut(`timed out after 1s (Seq_Timeout), expected 10/udp`, &f.stdout)

	type line struct{ Event, Door, Src, Msg string }
	var got []line
	var config bool
	for _, l := range strings.Split(strings.TrimSpace(f.stdout.String()), "\n") {
		var j line
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("-v/-D line %q is not JSON: %v", l, err)
		}
		switch j.Event {
		case "attempt ended", "timeout":
			got = append(got, j)
		case "debug":
			config = config || strings.HasPrefix(j.Msg, "config: [d] (")
		}
	}
	p := f.port()
	want := []line{
		{"attempt ended", "d", "198.18.0.3", "198.18.0.3: d: attempt ended at stage 1: got 9/udp, expected " + itoa(p) + "/tcp"},
		{"timeout", "e", "198.18.0.3", "198.18.0.3: e: sequence timeout (stage 1)"},
		{"attempt ended", "e", "198.18.0.3", "198.18.0.3: e: attempt ended at stage 1: timed out after 1s (Seq_Timeout), expected 10/udp"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !config {
		t.Errorf("-D did not dump the configuration:\n%s", f.stdout.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// rawUDP4 is an IPv4 UDP packet from src to 198.18.0.1:port.
func rawUDP4(src string, port uint16) []byte {
	b := make([]byte, 28)
	b[0], b[3], b[8], b[9] = 0x45, 28, 64, 17 // version and IHL, total length, TTL, UDP
	s := netip.MustParseAddr(src).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], []byte{198, 18, 0, 1})
	b[22], b[23] = byte(port>>8), byte(port) // destination port
	b[25] = 8                                // UDP length
	return b
}

// --replay follows a one-time door through a capture without marking its
// file, prints the start and stop commands without running them, and
// the timeouts after the capture's end, in the capture's time.
func TestReplayInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seqs := filepath.Join(dir, "seqs")
	seqText := " 7001:udp,7002:udp\n 7003:udp\n 7004:udp\n"
	if err := os.WriteFile(seqs, []byte(seqText), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "knockd.conf")
	if err := os.WriteFile(conf, []byte(`[options]
	LogFile = `+filepath.Join(dir, "knockd.log")+`
[once]
	one_time_sequences = `+seqs+`
	seq_timeout = 5
	start_command = touch `+filepath.Join(dir, "ran")+` %IP%
	cmd_timeout = 10
	stop_command = touch `+filepath.Join(dir, "ran")+` stop
[set]
	sequence = 8101:udp
	cmd_timeout = 30
	NFT_Set = inet knockd ssh4
	IPSet_6 = knock6
[slow]
	sequence = 8001:udp,8002:udp
	seq_timeout = 30
	command = true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 20, 0, 0, 0, time.Local)
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	w.WriteFileHeader(65536, layers.LinkTypeRaw)
	for _, p := range []struct {
		at   time.Duration
		port uint16
		src  string
	}{{0, 7001, ""}, {time.Second, 7002, ""}, {2 * time.Second, 7001, ""}, {3 * time.Second, 7003, ""}, {4 * time.Second, 8001, ""}, {5 * time.Second, 8101, "198.18.0.9"}} {
		src := "198.18.0.2"
		if p.src != "" {
			src = p.src
		}
		data := rawUDP4(src, p.port)
		w.WritePacket(gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(data), Length: len(data)}, data)
	}
	capFile := filepath.Join(dir, "knocks.pcap")
	if err := os.WriteFile(capFile, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), Options{ConfigPath: conf, Replay: capFile, Debug: true, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if strings.HasPrefix(l, "2026-12-01 20:") {
			got = append(got, l)
		}
	}
	ran := filepath.Join(dir, "ran")
	want := []string{
		"2026-12-01 20:00:00.000 198.18.0.2: once: Stage 1",
		"2026-12-01 20:00:01.000 198.18.0.2: once: Stage 2",
		"2026-12-01 20:00:01.000 198.18.0.2: once: OPEN SESAME",
		"2026-12-01 20:00:01.000 once: running command: touch " + ran + " 198.18.0.2 (not run: replay)",
		"2026-12-01 20:00:01.000 new sequence for door once: 7003:udp",
		// The used sequence is spent: 7001 is no knock any more, not
		// even watched.
		"2026-12-01 20:00:03.000 198.18.0.2: once: Stage 1",
		"2026-12-01 20:00:03.000 198.18.0.2: once: OPEN SESAME",
		"2026-12-01 20:00:03.000 once: running command: touch " + ran + " 198.18.0.2 (not run: replay)",
		"2026-12-01 20:00:03.000 new sequence for door once: 7004:udp",
		"2026-12-01 20:00:04.000 198.18.0.2: slow: Stage 1",
		"2026-12-01 20:00:05.000 198.18.0.9: set: Stage 1",
		"2026-12-01 20:00:05.000 198.18.0.9: set: OPEN SESAME",
		"2026-12-01 20:00:05.000 set: adding 198.18.0.9 to nft set inet knockd ssh4 for 30 s (not done: replay)",
		"2026-12-01 20:00:11.000 198.18.0.2: once: command timeout",
		"2026-12-01 20:00:11.000 once: running command: touch " + ran + " stop (not run: replay)",
		"2026-12-01 20:00:13.000 198.18.0.2: once: command timeout",
		"2026-12-01 20:00:13.000 once: running command: touch " + ran + " stop (not run: replay)",
		"2026-12-01 20:00:34.000 198.18.0.2: slow: sequence timeout (stage 1)",
		"2026-12-01 20:00:34.000 198.18.0.2: slow: attempt ended at stage 1: timed out after 30s (Seq_Timeout), expected 8002/udp",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s\nall:\n%s", diff, stdout.String())
	}
	if b, _ := os.ReadFile(seqs); string(b) != seqText {
		t.Errorf("the one-time file was changed: %q", b)
	}
	for _, name := range []string{"ran", "knockd.log", "state"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("the replay created %s", name)
		}
	}
	if !strings.Contains(stderr.String(), "replayed 6 packets, 5 of them knocks") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

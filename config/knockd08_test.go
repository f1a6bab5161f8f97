package config

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// knockd08Cases are configurations that this parser rejects. want08 is
// what the message must say knockd 0.8 would have done (after "knockd
// 0.8 would have "); empty when 0.8 refuses the file too, and then the
// message must say nothing about 0.8. dump are lines that Debian's
// knockd -D prints while it reads the file, which show its reading.
var knockd08Cases = []struct {
	name, conf string
	want08     string
	dump       []string
}{
	{"port not a number", "[d]\nsequence = 7000,abc\n",
		"read it as 7000:tcp,0:tcp", []string{"config: d: sequence: 7000:tcp,0:tcp"}},
	{"trailing comma", "[d]\nsequence = 7000,8000,\n",
		"read it as 7000:tcp,8000:tcp,0:tcp", []string{"config: d: sequence: 7000:tcp,8000:tcp,0:tcp"}},
	{"space-separated ports", "[d]\nsequence = 7000 8000\n",
		"read it as 7000:tcp", []string{"config: d: sequence: 7000:tcp"}},
	{"lone comma", "[d]\nsequence = ,\n",
		"read it as 0:tcp,0:tcp", []string{"config: d: sequence: 0:tcp,0:tcp"}},
	{"port 0", "[d]\nsequence = 0:udp\n",
		"read it as 0:udp", []string{"config: d: sequence: 0:udp"}},
	{"negative port", "[d]\nsequence = -5\n",
		"read it as 65531:tcp", []string{"config: d: sequence: 65531:tcp"}},
	{"sign, slash, second colon, hex", "[d]\nsequence = +7000,7000/udp,7000:UDP:x,0x10, 9000 : udp\n",
		"read it as 7000:tcp,7000:tcp,7000:udp,0:tcp,9000:udp", []string{"config: d: sequence: 7000:tcp,7000:tcp,7000:udp,0:tcp,9000:udp"}},
	{"inline comment", "[d]\nsequence = 7000,8000 # ssh\n",
		"read it as 7000:tcp,8000:tcp", []string{"config: d: sequence: 7000:tcp,8000:tcp"}},
	{"empty sequence", "[d]\nsequence =\n",
		"read it as 0:tcp", []string{"config: d: sequence: 0:tcp"}},
	{"timeout with a unit", "[d]\nsequence = 7000\nseq_timeout = 5s\n",
		"read it as 5 seconds", []string{"config: d: seq_timeout: 5"}},
	{"negative sequence timeout", "[d]\nsequence = 7000\ntimeout = -5\n",
		"read it as -5 seconds, which times out every attempt at its second knock", []string{"config: d: seq_timeout: -5"}},
	{"zero sequence timeout", "[d]\nsequence = 7000\nseq_timeout = 0\n",
		"read it as 0 seconds, which times out every attempt", []string{"config: d: seq_timeout: 0"}},
	{"fractional sequence timeout", "[d]\nsequence = 7000\nseq_timeout = 2.5\n",
		"read it as 2 seconds", []string{"config: d: seq_timeout: 2"}},
	{"command timeout with a unit", "[d]\nsequence = 7000\ncmd_timeout = 10s\n",
		"read it as 10 seconds", []string{"config: d: cmd_timeout: 10"}},
	{"negative command timeout", "[d]\nsequence = 7000\ncmd_timeout = -3\n",
		"read it as -3 seconds and waited 136 years before running the stop command", []string{"config: d: cmd_timeout: -3"}},
	{"timeout beyond an int", "[d]\nsequence = 7000\nseq_timeout = 3000000000\n",
		"read it as -1294967296 seconds", []string{"config: d: seq_timeout: -1294967296"}},
	{"timeout beyond a long", "[d]\nsequence = 7000\ncmd_timeout = 99999999999999999999\n",
		"read it as -1 seconds and waited 136 years", []string{"config: d: cmd_timeout: -1"}},
	{"empty command timeout", "[d]\nsequence = 7000\ncmd_timeout =\n",
		"read it as 0 seconds", []string{"config: d: cmd_timeout: 0"}},
	{"two doors with one name", "[d]\nsequence = 7000\n[d]\nsequence = 8000\n",
		"run both doors, under the one name", []string{"config: d: sequence: 7000:tcp", "config: d: sequence: 8000:tcp"}},
	{"flag required and excluded", "[d]\nsequence = 7000\ntcpflags = syn,!syn\n",
		"kept the last mention of each flag: TCPFlags = !syn", []string{"config: tcp flag: SYN", "config: tcp flag: !SYN"}},
	{"flag required and excluded over lines", "[d]\nsequence = 7000\ntcpflags = ack,fin\ntcpflags = syn,!ack\n",
		"kept the last mention of each flag: TCPFlags = fin,syn,!ack", []string{"config: tcp flag: !ACK"}},
	{"UseSyslog in a door", "[d]\nsequence = 7000\nUseSyslog\n",
		"turned syslog on all the same", []string{"config: usesyslog"}},
	{"[OPTIONS] holding a door key", "[OPTIONS]\nsequence = 7000\n",
		"read [OPTIONS] as a door of that name", []string{"config: OPTIONS: sequence: 7000:tcp"}},
	{"bracket in a section name", "[d]]\nsequence = 7000\n",
		`named the door "d]"`, []string{"config: d]: sequence: 7000:tcp"}},
	{"blank section name", "[ ]\nsequence = 7000\n",
		`named the door " "`, []string{"config:  : sequence: 7000:tcp"}},
	{"Sequence, then One_Time_Sequences", "[d]\nsequence = 7000\none_time_sequences = $DIR/good.seq\n",
		"used the one-time file and ignored the Sequence", []string{"config: d: sequence: 6110:tcp,6120:udp,6130:tcp"}},
	{"One_Time_Sequences, then Sequence", "[d]\none_time_sequences = $DIR/good.seq\nsequence = 7000\n",
		"used the Sequence until the first opening, then the lines of the one-time file", []string{"config: d: sequence: 7000:tcp"}},
	{"empty start command", "[d]\nsequence = 7000\nstart_command =\n",
		"run no command", []string{"config: d: start_command: "}},
	{"empty IPv6 start command", "[d]\nsequence = 7000\ncommand = true\ncommand_6 =\n",
		"run no command for IPv6 knockers", []string{"config: d: start_command_6: "}},
	{"empty stop command", "[d]\nsequence = 7000\ncommand = true\nstop_command =\n",
		`logged "command timeout" after Cmd_Timeout and run an empty command`, []string{"config: d: stop_command: "}},
	{"empty log file", "[options]\nlogfile =\n[d]\nsequence = 7000\n",
		"written no log file", []string{"config: log file: "}},
	{"empty interface", "[options]\ninterface =\n[d]\nsequence = 7000\n",
		"listened on eth0", nil},
	{"one-time line that 0.8 skips", "[d]\none_time_sequences = $DIR/skip.seq\n",
		"skipped this line", []string{"new sequence for door d: 8000:tcp"}},
	{"one-time line that 0.8 misreads", "[d]\none_time_sequences = $DIR/misread.seq\n",
		"read it as 1:tcp,0:tcp", []string{"new sequence for door d: 1:tcp,0:tcp"}},

	// knockd 0.8 refuses these too.
	{"unknown key", "[d]\nsequence = 7000\nseq_timout = 5\n", "", nil},
	{"unknown key in options", "[options]\nfoo = 1\n", "", nil},
	{"unknown flag", "[d]\nsequence = 7000\ntcpflags = syn,foo\n", "", nil},
	{"space-padded flag", "[d]\nsequence = 7000\ntcpflags = syn, ack\n", "", nil},
	{"empty flags", "[d]\nsequence = 7000\ntcpflags =\n", "", nil},
	{"port 65536", "[d]\nsequence = 65536\n", "", nil},
	{"unknown protocol", "[d]\nsequence = 7000:icmp\n", "", nil},
	{"33 ports", "[d]\nsequence = " + strings.Repeat("7000,", 32) + "7000\n", "", nil},
	{"options key in a door", "[d]\nsequence = 7000\nlogfile = /tmp/x\n", "", nil},
	{"door key in [options]", "[options]\nsequence = 7000\n", "", nil},
	{"directive before any section", "UseSyslog\n[d]\nsequence = 7000\n", "", nil},
	{"missing equals sign", "[d]\nsequence 7000\n", "", nil},
	{"UseSyslog with a value", "[options]\nUseSyslog = yes\n[d]\nsequence = 7000\n", "", nil},
	{"unclosed section", "[d\nsequence = 7000\n", "", nil},
	{"missing one-time file", "[d]\none_time_sequences = $DIR/nope.seq\n", "", nil},
}

// problem parses conf and returns its error or, where a bad line only
// disables a door (a one-time file's), its warnings; false when there
// is neither.
func problem(conf string) (string, bool) {
	cfg, err := Parse("knockd.conf", []byte(conf))
	if err != nil {
		return err.Error(), true
	}
	return strings.Join(cfg.Warnings, "\n"), len(cfg.Warnings) > 0
}

// knockd08Files are the one-time sequence files that knockd08Cases name.
var knockd08Files = map[string]string{
	"good.seq":    " 6110,6120:udp,6130\n 6140\n",
	"skip.seq":    " 7000:icmp\n 8000\n",
	"misread.seq": " 1,abc\n",
}

func TestKnockd08Messages(t *testing.T) {
	r := tempFiles(t, knockd08Files)
	for _, tt := range knockd08Cases {
		t.Run(tt.name, func(t *testing.T) {
			msg, ok := problem(r.Replace(tt.conf))
			if !ok {
				t.Fatal("Parse succeeded with no warning, want an error or a warning")
			}
			switch {
			case tt.want08 == "" && strings.Contains(msg, "knockd 0.8"):
				t.Errorf("error %q speaks of knockd 0.8, which refuses this file too", msg)
			case tt.want08 != "" && !strings.Contains(msg, "; knockd 0.8 would have "+tt.want08):
				t.Errorf("error %q\ndoes not say: knockd 0.8 would have %s", msg, tt.want08)
			}
		})
	}
}

// TestKnockd08MessagesAgainstDebian reads each case with Debian's knockd
// -D: it must accept exactly the files whose message says what it would
// have done, and print the reading the message gives. It names an
// interface that does not exist, so that knockd stops right after reading
// the file ("could not open ...") and captures nothing.
func TestKnockd08MessagesAgainstDebian(t *testing.T) {
	const bin = "/usr/sbin/knockd"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Debian's knockd is not installed (%v)", err)
	}
	r := tempFiles(t, knockd08Files)
	dir := t.TempDir()
	for i, tt := range knockd08Cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conf := filepath.Join(dir, fmt.Sprintf("%02d.conf", i))
			if err := os.WriteFile(conf, []byte(r.Replace(tt.conf)), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, bin, "-D", "-c", conf, "-i", "knk08none").CombinedOutput()
			accepted := strings.Contains(string(out), "could not open knk08none")
			if accepted != (tt.want08 != "") {
				t.Fatalf("knockd 0.8 accepted the file: %v; our message claims a reading: %v\nknockd -D:\n%s", accepted, tt.want08 != "", out)
			}
			lines := strings.Split(string(out), "\n")
			for _, want := range tt.dump {
				if !slices.Contains(lines, want) {
					t.Errorf("knockd -D does not print %q:\n%s", want, out)
				}
			}
			// The reading our message gives is the one knockd prints.
			msg, _ := problem(r.Replace(tt.conf))
			if m := readingRE.FindStringSubmatch(msg); m != nil {
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, ": "+m[1]) }) {
					t.Errorf("our message reads it as %s; knockd -D prints no line ending in it:\n%s", m[1], out)
				}
			} else if strings.Contains(msg, "read it as") {
				t.Errorf("readingRE does not find the reading in %q", msg)
			}
		})
	}
}

// readingRE finds the reading of a sequence or a number of seconds in a
// message, as knockd -D prints it at the end of a line.
var readingRE = regexp.MustCompile(`knockd 0\.8 would have read it as ([0-9:tcpud,]+|-?[0-9]+)( seconds|: |$)`)

// FuzzSequence08 checks that every Sequence this parser accepts means the
// same to knockd 0.8, so that no knockd.conf changes meaning in the swap.
// Input with bytes beyond ASCII is left out: Go's white space includes
// U+0085 and U+00A0, which ours trims around a port and C's isspace does
// not.
func FuzzSequence08(f *testing.F) {
	for _, s := range []string{
		"7000,8000,9000", "2222:udp,3333:tcp,4444:udp", " 1 : UDP , 65535 ", "7000,", "7000 8000",
		"0", "65536", "-5", "+7000", "7000:udp:x", "\t7\v:\ftcp", strings.Repeat("1,", 32) + "1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, b := range []byte(s) {
			if b >= 0x80 {
				return
			}
		}
		got, err := ParseSequence(s)
		r, ok := sequence08(cTrim(s))
		if err != nil {
			if ok != strings.Contains(err.Error(), "knockd 0.8 would have read it as "+r) {
				t.Fatalf("ParseSequence(%q): %v, yet knockd 0.8 reads it as %q (%v)", s, err, r, ok)
			}
			return
		}
		parts := make([]string, len(got))
		for i, k := range got {
			parts[i] = k.String()
		}
		if want := strings.Join(parts, ","); !ok || r != want {
			t.Fatalf("ParseSequence(%q) = %s, knockd 0.8 reads %q (ok %v)", s, want, r, ok)
		}
	})
}

func TestAtoi08(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int32
	}{
		{"", 0}, {"abc", 0}, {"25", 25}, {" \t+25s", 25}, {"-7", -7}, {"--7", 0}, {"- 7", 0},
		{"2147483647", 2147483647}, {"2147483648", -2147483648}, {"3000000000", -1294967296},
		{"9223372036854775807", -1}, {"99999999999999999999", -1},
		{"-9223372036854775808", 0}, {"-99999999999999999999", 0}, {"4294967296", 0},
	} {
		if got := atoi08(tt.in); got != tt.want {
			t.Errorf("atoi08(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

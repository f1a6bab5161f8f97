package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knock-go/knock/wire"
)

// fakeOneTime stands in for the one-time sequence files in FuzzParse, so
// that fuzzed paths never reach the file system.
func fakeOneTime(path string) ([]wire.Knock, OneTimeLine, error) {
	switch path {
	case "seq.seq":
		return seq(6110, -6120, 6130), OneTimeLine{Off: 1, Num: 1, Text: "#6110,6120:udp,6130"}, nil
	case "used.seq":
		return nil, OneTimeLine{}, &Error{File: path, Msg: ErrNoSequence.Error(), Err: ErrNoSequence}
	}
	return nil, OneTimeLine{}, &Error{File: path, Msg: "cannot read one-time sequences: no such file or directory", Err: os.ErrNotExist}
}

// checkSequence fails t unless s is a sequence knockd could wait for.
func checkSequence(t *testing.T, what string, s []wire.Knock) {
	t.Helper()
	if len(s) < 1 || len(s) > MaxSequence {
		t.Fatalf("%s has %d knocks, want 1 to %d", what, len(s), MaxSequence)
	}
	for _, k := range s {
		if k.Port == 0 || k.Proto != wire.TCP && k.Proto != wire.UDP {
			t.Fatalf("%s holds a bad knock %v", what, k)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"[options]\n\nUseSyslog\n[openSSH]\n\nsequence = 7000,8000,9000\nseq_timeout = 5\n" +
			"command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\ntcpflags = syn\n",
		"[options]\nUseSyslog\n\n [opencloseSSH]\nsequence = 2222:udp,3333:tcp,4444:udp\nseq_timeout = 15\n" +
			"tcpflags = syn,ack\nstart_command = a %IP%\ncmd_timeout = 10\nstop_command  = b %IP%\n",
		"[openHello]\none_time_sequences = seq.seq\nseq_timeout = 5\ncommand = echo \"Je suis ouvert\"\ntcpflags = syn\n",
		"[d]\none_time_sequences = used.seq\n",
		"[d]\none_time_sequences = missing.seq\n",
		"[d]\nsequence = 1\nsequence = 2\ntcpflags = syn\ntcpflags = !ack\ntarget = 2001:db8::1\n",
		"[d]\nsequence = 1\ncommand = `a` b\nstop_command = \"\"\"x\ncommand_6 = \"a\" # b ; c = d\n",
		"\ufeff[options]\r\nLogFile = /tmp/x\r\nMaxAttempts = 10\r\n[a.b]\r\nsequence=1\r\n",
		"UseSyslog\n",
		"[d]\n[d]\n",
		"[d]\nsequence 7000\n",
		"[options]\nUseSyslog\nUseSyslog\n",
		"[DEFAULT]\nsequence = 1\n[d]\ntimeout = 0\n",
		"[d]\nsequence = 1\nsource = 192.0.2.0/24, 2001:db8::1\nsource = ::ffff:198.51.100.0/120\n",
		"[ d ]\nsequence = 1\ncommand = \"\"\"a\"\"\" b\nstop_command = `\ncommand = \"\"\"\"\"\"\ntimeout = 5\nseq_timeout = 6\n",
		"[d]\nsequence_secret = good.secret\nsequence_length = 32\nsequence_ports = 1-32\nsequence_step = 2\nsequence_proto = udp\n",
		"[d]\nsequence_secret = missing.secret\n",
	} {
		f.Add([]byte(s))
	}
	// Arbitrary input never reads arbitrary files: good.secret is the
	// one secret there is.
	saved := readSecret
	readSecret = func(path string) ([]byte, string, error) {
		if path == "good.secret" {
			return []byte("0123456789abcdef"), "", nil
		}
		return nil, "", errors.New("cannot read the secret: no such file or directory")
	}
	f.Cleanup(func() { readSecret = saved })
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReading(t, data)
		c, err := parse("knockd.conf", data, fakeOneTime)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, not an *Error", err, err)
			}
			if c != nil {
				t.Fatalf("a Config came with error %v", err)
			}
			if e.Line < 0 || e.Line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("error %v names line %d of a %d-line file", err, e.Line, bytes.Count(data, []byte("\n"))+1)
			}
			_ = err.Error()
			return
		}
		names := map[string]bool{}
		for _, d := range c.Doors {
			if d.SecretFile != "" {
				if err := d.Derive.Check(); err != nil || len(d.Sequence) != 0 {
					t.Fatalf("door %s: derived with %+v (%v), sequence %v", d.Name, d.Derive, err, d.Sequence)
				}
				d = d.Derived(12345)
			}
			checkSequence(t, "door "+d.Name, d.Sequence)
			if d.Name == "" || names[d.Name] {
				t.Fatalf("door name %q is empty or repeated", d.Name)
			}
			names[d.Name] = true
			if d.SeqTimeout <= 0 || d.CmdTimeout < 0 {
				t.Fatalf("door %s: timeouts %v, %v", d.Name, d.SeqTimeout, d.CmdTimeout)
			}
			if d.Flags.Set&d.Flags.Unset != 0 {
				t.Fatalf("door %s: flags %+v can never match", d.Name, d.Flags)
			}
			for _, p := range d.Sources {
				if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() && p.Bits() >= 96 {
					t.Fatalf("door %s: source prefix %v is not a plain masked prefix", d.Name, p)
				}
			}
		}
	})
}

// checkReading fails t unless readLines and ini.v1 read data as knockd
// does: every line above the first one rejected is blank, a comment, a
// section whose name ini.v1 read as the text between the brackets,
// trimmed, a bare word, or a key whose value ini.v1 read as the rest of
// the line after the first "=", trimmed. Only a repeated bare word may be
// left out.
func checkReading(t *testing.T, data []byte) {
	t.Helper()
	secs, src, lineErr := readLines("knockd.conf", data)
	if err := readINI("knockd.conf", src, secs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimPrefix(string(data), "\ufeff"), "\n")
	stop := len(lines) + 1
	if lineErr != nil {
		stop = lineErr.Line
	}
	read := map[int]bool{}
	for _, s := range secs {
		read[s.line] = true
		h := strings.TrimSpace(lines[s.line-1])
		if want := strings.TrimSpace(h[1 : len(h)-1]); s.name != want {
			t.Fatalf("line %d: ini.v1 named the section %q, knockd %q", s.line, s.name, want)
		}
		words := map[string]bool{}
		for _, e := range s.entries {
			read[e.line] = true
			k, v, ok := strings.Cut(strings.TrimSpace(lines[e.line-1]), "=")
			switch k = strings.ToLower(strings.TrimSpace(k)); {
			case k != e.key:
				t.Fatalf("line %d: key %q, knockd reads %q", e.line, e.key, k)
			case ok == e.bare:
				t.Fatalf("line %d: bare is %v, yet the line has an \"=\": %v", e.line, e.bare, ok)
			case e.bare:
				words[k] = true
			case e.value != strings.TrimSpace(v):
				t.Fatalf("line %d: ini.v1 read the value %q, knockd %q", e.line, e.value, strings.TrimSpace(v))
			}
		}
		for n := s.line + 1; n < stop && n <= len(lines); n++ {
			l := strings.TrimSpace(lines[n-1])
			if l != "" && l[0] == '[' {
				break
			}
			if !read[n] && l != "" && l[0] != '#' && l[0] != ';' && !words[strings.ToLower(l)] {
				t.Fatalf("line %d (%q) was left out", n, l)
			}
		}
	}
}

func FuzzParseSequence(f *testing.F) {
	for _, s := range []string{
		"7000,8000,9000", "2222:udp,3333:tcp,4444:udp", " 1 : UDP , 65535 ", "7000,", "7000 8000",
		"0", "65536", "abc", "7000:icmp", strings.Repeat("1,", 32) + "1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSequence(s)
		if err != nil {
			return
		}
		checkSequence(t, "sequence", got)
		// What String prints parses back to the same sequence.
		parts := make([]string, len(got))
		for i, k := range got {
			parts[i] = k.String()
		}
		again, err := ParseSequence(strings.Join(parts, ","))
		if err != nil {
			t.Fatalf("ParseSequence(%q) = %v, and its String form fails: %v", s, got, err)
		}
		for i := range got {
			if again[i] != got[i] {
				t.Fatalf("ParseSequence(%q) = %v, its String form gives %v", s, got, again)
			}
		}
	})
}

func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"syn", "syn,!ack", "SYN,ACK,urg", "syn, ack", "syn,!syn", "", "fin,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFlags(s)
		if err != nil {
			return
		}
		if got.Set&got.Unset != 0 {
			t.Fatalf("ParseFlags(%q) = %+v: required and excluded", s, got)
		}
		if again, err := ParseFlags(got.String()); err != nil || again != got {
			t.Fatalf("ParseFlags(%q) = %+v, its String form %q gives %+v, %v", s, got, got.String(), again, err)
		}
	})
}

func FuzzNextOneTime(f *testing.F) {
	for _, s := range []string{
		" 6110,6120,6130\n 6140,6150,6160\n",
		"#6110,6120,6130\n 6140,6150,6160\n",
		"# comment\n\n  \t\n 1:udp\r\n2,3",
		" 1,abc\n",
		"",
		"#\n#\n#",
	} {
		f.Add([]byte(s), int64(0))
	}
	f.Add([]byte(" 1\n 2\n 3\n"), int64(4))
	f.Add([]byte(" 1\n"), int64(-5))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, from int64) {
		data = bytes.Clone(data) // it gets marked below, as the file does
		path := filepath.Join(dir, "sequences.seq")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		// Use up the sequences one by one, as the daemon does, checking
		// each and that the file changes by one byte each time.
		s, at, err := ReadOneTime(path, from)
		for i := 0; i <= lines; i++ {
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v is a %T, not an *Error", err, err)
				}
				return
			}
			checkSequence(t, "sequence", s)
			off := at.Off
			switch {
			case off < from || off >= int64(len(data)):
				t.Fatalf("offset %d: from %d, file of %d bytes", off, from, len(data))
			case off > 0 && data[off-1] != '\n':
				t.Fatalf("offset %d is not the start of a line", off)
			case at.Num != bytes.Count(data[:off], []byte("\n"))+1:
				t.Fatalf("offset %d is on line %d, not %d", off, bytes.Count(data[:off], []byte("\n"))+1, at.Num)
			case at.Reread != "":
				t.Fatalf("the file was read again (%s), though nothing else changed it", at.Reread)
			}
			d := &Door{OneTimeFile: path, Sequence: s, OneTimeOffset: off, OneTimeText: at.Text, OneTimeInfo: at.Info}
			s, at, err = UseOneTime(d)
			data[off] = '#'
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("after using the line at %d the file holds %q, want %q", off, got, data)
			}
			from = off + 1
		}
		t.Fatalf("more sequences than the %d lines of the file", lines)
	})
}

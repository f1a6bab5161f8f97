package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/wire"
)

// tempFiles writes files (name -> contents) into a new temporary
// directory and returns a replacer that turns $DIR in a test's text into
// that directory.
func tempFiles(t *testing.T, files map[string]string) *strings.Replacer {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return strings.NewReplacer("$DIR", dir)
}

// oneTimeFiles are the one-time sequence files the table tests may name.
var oneTimeFiles = map[string]string{
	"good.seq":  "# comment\n\n 6110,6120:udp,6130\n 6140,6150,6160\n",
	"used.seq":  "#6110,6120,6130\n#6140,6150,6160\n\n   \n",
	"empty.seq": "",
	"bad.seq":   " 6110,6120\n 6130,abc\n",
}

func TestParseErrors(t *testing.T) {
	r := tempFiles(t, oneTimeFiles)
	tests := []struct {
		name    string
		conf    string
		line    int
		section string
		key     string
		msg     string // a substring of the message
	}{
		// Keys.
		{"unknown key with suggestion", "[openSSH]\nsequence = 1\nseq_timout = 5\n",
			3, "openSSH", "", `unknown key "seq_timout" (did you mean Seq_Timeout?)`},
		{"unknown key in options with suggestion", "[options]\nlogfle = /tmp/x\n",
			2, "options", "", `unknown key "logfle" (did you mean LogFile?)`},
		{"unknown key, nothing near", "[d]\nsequence = 1\nfrobnicate = 5\n",
			3, "d", "", `unknown key "frobnicate"; the keys of a door section are Cmd_Timeout, Command`},
		{"unknown bare word", "[d]\nsequence = 1\nverbose\n",
			3, "d", "", `unknown key "verbose"`},
		{"IPSet with a space", "[d]\nsequence = 1\nipset = a b\n",
			3, "d", "IPSet", `"a b" is not an ipset name: 1 to 31 characters, no spaces`},
		{"NFT_Set not three words", "[d]\nsequence = 1\nnft_set = inet knockd\n",
			3, "d", "NFT_Set", `"inet knockd" is not FAMILY TABLE SET: write for example inet knockd ssh4`},
		{"NFT_Set in a family without sets", "[d]\nsequence = 1\nnft_set = bridge knockd ssh4\n",
			3, "d", "NFT_Set", `family "bridge" holds no address set: write inet, ip or ip6`},
		{"NFT_Set in an ip6 table", "[d]\nsequence = 1\nNFT_Set = ip6 knockd ssh4\n",
			3, "d", "NFT_Set", "an ip6 table holds no IPv4 addresses"},
		{"NFT_Set_6 in an ip table", "[d]\nsequence = 1\nNFT_Set_6 = ip knockd ssh6\n",
			3, "d", "NFT_Set_6", "an ip table holds no IPv6 addresses"},
		{"missing equals sign", "[d]\nsequence 7000,8000\n",
			2, "d", "Sequence", `missing "=" between the key and its value: write Sequence = 7000,8000`},
		{"door key in options", "[options]\nUseSyslog\nsequence = 7000\n",
			3, "options", "Sequence", "this key belongs in a door section (such as [openSSH]), not in [options]"},
		{"options key in door", "[openSSH]\nsequence = 7000\nLogFile = /var/log/knockd.log\n",
			3, "openSSH", "LogFile", "this key belongs in the [options] section, not in a door section"},
		{"UseSyslog in door", "[d]\nsequence = 7000\nusesyslog\n",
			3, "d", "UseSyslog", "belongs in the [options] section"},
		{"UseSyslog with a value", "[options]\nUseSyslog = no\n",
			2, "options", "UseSyslog", "takes no value: write UseSyslog alone on its line"},
		{"bare door key", "[d]\nsequence\n",
			2, "d", "Sequence", "no value: write Sequence = 7000,8000:udp,9000"},
		{"empty value", "[d]\nsequence = 1\ncommand =\n",
			3, "d", "Command", "no value: write Command = /sbin/iptables -A INPUT"},
		{"empty logfile", "[options]\nlogfile = \n",
			2, "options", "LogFile", "no value: write LogFile = /var/log/knockd.log"},

		// A quoted key name is not unquoted, and "-" is not a key.
		{"quoted key name", "[d]\n\"sequence\" = 1\n",
			2, "d", "", `unknown key "\"sequence\"" (did you mean Sequence?)`},
		{"dash as a key", "[d]\n- = 1\n",
			2, "d", "", `unknown key "-"; the keys of a door section are`},

		// Structure.
		{"directive before any section", "# knockd.conf\n\nUseSyslog\n[options]\n",
			3, "", "", "all directives must belong to a section"},
		{"two doors with the same name", "[options]\nUseSyslog\n[openSSH]\nsequence = 1\n\n[openSSH]\nsequence = 2\n",
			6, "openSSH", "", `door "openSSH" is already defined at line 3: give each door a name of its own`},
		{"unclosed section", "[openSSH\nsequence = 1\n",
			1, "", "", `section header has no closing "]"`},
		{"text after section", "[openSSH] # door\nsequence = 1\n",
			1, "", "", `unexpected text after "]"`},
		{"empty section name", "[ ]\nsequence = 1\n",
			1, "", "", "empty section name"},
		{"bracket in section name", "[a]b]\nsequence = 1\n",
			1, "", "", `section name "a]b" may not contain [ or ]`},
		{"no key before equals", "[d]\nsequence = 1\n= 5\n",
			3, "d", "", `no key before "="`},
		{"door without sequence", "[options]\nUseSyslog\n\n[openSSH]\ncommand = true\n",
			4, "openSSH", "", "has no Sequence: add Sequence = "},
		{"door with both sequences", "[d]\nsequence = 1\none_time_sequences = $DIR/good.seq\n",
			3, "d", "One_Time_Sequences", "a door has either a Sequence (line 2) or One_Time_Sequences (line 3), not both"},
		{"error in an earlier line wins over a later structural error", "[d]\nsequence = x\n[e\n",
			2, "d", "Sequence", `"x" is not a port number`},

		// Sequence.
		{"port not a number", "[d]\nsequence = 7000,abc,9000\n",
			2, "d", "Sequence", `"abc" is not a port number`},
		{"port 0", "[d]\nsequence = 7000,0\n",
			2, "d", "Sequence", "port 0 is outside 1-65535"},
		{"port 65536", "[d]\nsequence = 65536\n",
			2, "d", "Sequence", "port 65536 is outside 1-65535"},
		{"empty sequence", "[d]\nsequence = ,\n",
			2, "d", "Sequence", "empty entry 1"},
		{"trailing comma", "[d]\nsequence = 7000,8000,\n",
			2, "d", "Sequence", `empty entry 3 in "7000,8000,": remove the extra comma`},
		{"unknown protocol", "[d]\nsequence = 7000:icmp\n",
			2, "d", "Sequence", `unknown protocol "icmp" in "7000:icmp": say tcp or udp`},
		{"space-separated ports", "[d]\nsequence = 7000 8000\n",
			2, "d", "Sequence", `"7000 8000" is not a port number (separate ports with commas`},
		{"inline comment", "[d]\nsequence = 7000 # ssh\n",
			2, "d", "Sequence", "a comment must be on a line of its own"},
		{"33 ports", "[d]\nsequence = " + strings.Repeat("1000,", 32) + "1000\n",
			2, "d", "Sequence", "sequence has 33 ports: at most 32 are allowed"},
		{"bad earlier sequence is an error even when replaced", "[d]\nsequence = 70000\nsequence = 7000\n",
			2, "d", "Sequence", "port 70000 is outside 1-65535"},

		// TCPFlags.
		{"unknown flag", "[d]\nsequence = 1\ntcpflags = syn,foo\n",
			3, "d", "TCPFlags", `unknown flag "foo": use fin, syn, rst, psh, ack or urg`},
		{"space-padded flag", "[d]\nsequence = 1\ntcpflags = syn, ack\n",
			3, "d", "TCPFlags", `flag " ack" has a space: remove it (write syn,ack)`},
		{"flag required and excluded", "[d]\nsequence = 1\ntcpflags = syn,!syn\n",
			3, "d", "TCPFlags", "syn is both required and excluded"},
		{"flag required and excluded over two lines", "[d]\nsequence = 1\ntcpflags = ack\ntcpflags = syn,!ack\n",
			4, "d", "TCPFlags", "with the TCPFlags lines above, ack is both required and excluded"},

		// Timeouts.
		{"timeout with unit", "[openSSH]\nsequence = 1\nSeq_Timeout = 5s\n",
			3, "openSSH", "Seq_Timeout", `"5s" is not a whole number of seconds`},
		{"fractional timeout", "[d]\nsequence = 1\ntimeout = 1.5\n",
			3, "d", "Timeout", `"1.5" is not a whole number of seconds`},
		{"negative timeout", "[d]\nsequence = 1\ncmd_timeout = -1\n",
			3, "d", "Cmd_Timeout", `"-1" is not a whole number of seconds`},
		{"zero sequence timeout", "[d]\nsequence = 1\nseq_timeout = 0\n",
			3, "d", "Seq_Timeout", "0 seconds would never let a sequence complete"},
		{"huge timeout", "[d]\nsequence = 1\ncmd_timeout = 99999999999999999999\n",
			3, "d", "Cmd_Timeout", "seconds is too long: at most 2147483647"},

		// Other values.
		{"bad target", "[d]\nsequence = 1\ntarget = example.com\n",
			3, "d", "Target", `"example.com" is not an IP address`},
		{"target with zone", "[d]\nsequence = 1\ntarget = fe80::1%eth0\n",
			3, "d", "Target", `has a zone`},
		{"bad source address", "[door]\nsequence = 1\nSource = 10.0.0.300/8\n",
			3, "door", "Source", `"10.0.0.300/8" is not an address or CIDR prefix (write an address or a prefix, such as 192.0.2.7, 192.0.2.0/24 or 2001:db8::/32, several separated by commas)`},
		{"source prefix too long", "[d]\nsequence = 1\nsource = 192.0.2.0/33\n",
			3, "d", "Source", `"192.0.2.0/33" is not an address or CIDR prefix (the length after / is at most 32 for 192.0.2.0)`},
		{"source prefix with no length", "[d]\nsequence = 1\nsource = 2001:db8::/\n",
			3, "d", "Source", `"2001:db8::/" is not an address or CIDR prefix`},
		{"source host name", "[d]\nsequence = 1\nsource = example.com\n",
			3, "d", "Source", `"example.com" is not an address or CIDR prefix`},
		{"source list with a trailing comma", "[d]\nsequence = 1\nsource = 192.0.2.0/24,\n",
			3, "d", "Source", `empty entry in "192.0.2.0/24,"`},
		{"source list without commas", "[d]\nsequence = 1\nsource = 192.0.2.0/24 198.51.100.0/24\n",
			3, "d", "Source", `"192.0.2.0/24 198.51.100.0/24" is not an address or CIDR prefix`},
		{"source with zone", "[d]\nsequence = 1\nsource = fe80::1%eth0\n",
			3, "d", "Source", `has a zone`},
		{"source in options", "[options]\nsource = 192.0.2.0/24\n",
			2, "options", "Source", "belongs in a door section"},
		{"bad LogFormat", "[options]\nLogFormat = xml\n",
			2, "options", "LogFormat", `"xml" is not a log format: write text`},
		{"bad MaxAttempts", "[options]\nMaxAttempts = many\n",
			2, "options", "MaxAttempts", `"many" is not a whole number`},
		{"zero MaxCommands", "[options]\nMaxCommands = 0\n",
			2, "options", "MaxCommands", "0 is out of range: give a number from 1 to"},
		{"zero CommandLimit", "[options]\nCommandLimit = 0\n",
			2, "options", "CommandLimit", "0 seconds would kill every command at once"},
		{"bad CommandLimit", "[options]\nCommandLimit = 1m\n",
			2, "options", "CommandLimit", `"1m" is not a whole number of seconds`},
		{"relative ControlSocket", "[options]\nControlSocket = knockd.sock\n",
			2, "options", "ControlSocket", `"knockd.sock" is not an absolute path`},
		{"long ControlSocket", "[options]\nControlSocket = /" + strings.Repeat("x", 120) + "\n",
			2, "options", "ControlSocket", "a unix socket's path has room for 107"},
		{"MetricsAddress without port", "[options]\nMetricsAddress = 127.0.0.1\n",
			2, "options", "MetricsAddress", `"127.0.0.1" is not HOST:PORT`},
		{"MetricsAddress bad port", "[options]\nMetricsAddress = :http\n",
			2, "options", "MetricsAddress", `port "http" is not a number from 0 to 65535`},

		// One-time sequences.
		{"missing one-time file", "[openHello]\n\none_time_sequences = $DIR/nope.seq\n",
			3, "openHello", "One_Time_Sequences", "$DIR/nope.seq: cannot read one-time sequences: no such file or directory"},
		{"one-time file with only used lines", "[d]\none_time_sequences = $DIR/used.seq\n",
			2, "d", "One_Time_Sequences", "$DIR/used.seq: no unused sequence left"},
		{"empty one-time file", "[d]\none_time_sequences = $DIR/empty.seq\n",
			2, "d", "One_Time_Sequences", "$DIR/empty.seq: no unused sequence left"},
		{"one-time file that is a directory", "[d]\none_time_sequences = $DIR\n",
			2, "d", "One_Time_Sequences", "must be a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := r.Replace(tt.conf)
			c, err := Parse("knockd.conf", []byte(conf))
			if err == nil {
				t.Fatalf("Parse succeeded with %d doors, want an error containing %q", len(c.Doors), tt.msg)
			}
			if c != nil {
				t.Errorf("Parse returned a Config along with error %v", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error %v is a %T, not an *Error", err, err)
			}
			want := &Error{File: "knockd.conf", Line: tt.line, Section: tt.section, Key: tt.key}
			got := &Error{File: e.File, Line: e.Line, Section: e.Section, Key: e.Key}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("error %q: position mismatch (-want +got):\n%s", err, diff)
			}
			if msg := r.Replace(tt.msg); !strings.Contains(e.Msg, msg) {
				t.Errorf("error %q does not contain %q", err, msg)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	conf := "[options]\nUseSyslog\n\n[openSSH]\nsequence = 7000,8000,9000\nSeq_Timeout = 5s\n"
	_, err := Parse("/etc/knockd.conf", []byte(conf))
	want := `/etc/knockd.conf:6: [openSSH] Seq_Timeout: "5s" is not a whole number of seconds`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Parse error = %v, want it to start with %q", err, want)
	}
}

func TestParseOneTimeErrorWraps(t *testing.T) {
	r := tempFiles(t, oneTimeFiles)
	for _, tt := range []struct {
		file string
		is   error
	}{
		{"nope.seq", fs.ErrNotExist},
		{"used.seq", ErrNoSequence},
	} {
		_, err := Parse("k.conf", []byte(r.Replace("[d]\none_time_sequences = $DIR/"+tt.file+"\n")))
		if !errors.Is(err, tt.is) {
			t.Errorf("%s: errors.Is(%v, %v) = false", tt.file, err, tt.is)
		}
	}
	// A bad line names the sequence file and its line.
	_, err := Parse("k.conf", []byte(r.Replace("[d]\none_time_sequences = $DIR/bad.seq\n")))
	if err != nil {
		t.Fatalf("bad.seq starts with a good line, yet: %v", err)
	}
	path := r.Replace("$DIR/worse.seq")
	if err := os.WriteFile(path, []byte("\n 6110,abc\n 6140\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// It disables that door only, with a warning: the file is the
	// daemon's data, and a bad line in it must not stop the other doors
	// at start or at a reload.
	c, err := Parse("k.conf", []byte("[d]\none_time_sequences = "+path+"\n[e]\nsequence = 1\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(c.Doors) != 2 || len(c.Doors[0].Sequence) != 0 || len(c.Doors[1].Sequence) != 1 {
		t.Fatalf("doors %+v, want d without a sequence and e with its own", c.Doors)
	}
	want := "k.conf:2: [d] One_Time_Sequences: " + path + `:2: "abc" is not a port number`
	if len(c.Warnings) == 0 || !strings.HasPrefix(c.Warnings[0], want) || !strings.Contains(c.Warnings[0], "the door is disabled") {
		t.Errorf("warnings %q, want one that starts with %q and says the door is disabled", c.Warnings, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knockd.conf")
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if want := path + ": cannot read the configuration: no such file or directory"; err.Error() != want {
		t.Errorf("Load error = %q, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("Load error is a %T, not an *Error", err)
	}
}

func TestParse(t *testing.T) {
	r := tempFiles(t, oneTimeFiles)
	tests := []struct {
		name string
		conf string
		want *Config
	}{
		{
			name: "later Sequence replaces an earlier one",
			conf: "[d]\nsequence = 1,2,3\nsequence = 4:udp,5\n",
			want: &Config{Doors: []*Door{door("d", 1, seq(-4, 5))}},
		},
		{
			name: "nftables sets",
			conf: "[d]\nsequence = 1\nNFT_Set = inet  knockd ssh4\nnft_set_6 = ip6 filter ssh6\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) {
				d.NFTSet = NFTSet{"inet", "knockd", "ssh4"}
				d.NFTSet6 = NFTSet{"ip6", "filter", "ssh6"}
			})}},
		},
		{
			name: "ipsets",
			conf: "[d]\nsequence = 1\nIPSet = knock4\nipset_6 = knock6\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) {
				d.IPSet, d.IPSet6 = "knock4", "knock6"
			})}},
		},
		{
			name: "TCPFlags lines add up",
			conf: "[d]\nsequence = 1\ntcpflags = syn\ntcpflags = !ack,!rst\nTCPFlags = URG\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) {
				d.Flags = wire.FlagFilter{Set: wire.SYN | wire.URG, Unset: wire.ACK | wire.RST}
			})}},
		},
		{
			name: "values keep #, ;, = and quotes",
			conf: "[d]\nsequence = 1\n" +
				`start_command = "foo" bar "baz" # not a comment; a=b` + "\n" +
				`stop_command = 'single' "double"` + "\n" +
				`start_command_6 = "all quoted"` + "\n" +
				"stop_command_6 = x = y ; z\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) {
				d.StartCommand = `"foo" bar "baz" # not a comment; a=b`
				d.StopCommand = `'single' "double"`
				d.StartCommand6 = `"all quoted"`
				d.StopCommand6 = "x = y ; z"
			})}},
		},
		{
			name: "a leading backquote or triple quote is part of the command",
			conf: "[d]\nsequence = 1\n" +
				"command = `which iptables` -A INPUT -s %IP% -j ACCEPT\n" +
				`stop_command = """x""" y` + "\n" +
				"command_6 = `unclosed\n" +
				"cmd_timeout = 3\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) {
				d.StartCommand = "`which iptables` -A INPUT -s %IP% -j ACCEPT"
				d.StopCommand = `"""x""" y`
				d.StartCommand6 = "`unclosed"
				d.CmdTimeout = 3 * time.Second
			})}},
		},
		{
			name: "a trailing backslash continues nothing",
			conf: "[d]\nsequence = 1\ncommand = echo a \\\ncmd_timeout = 4\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) {
				d.StartCommand = `echo a \`
				d.CmdTimeout = 4 * time.Second
			})}},
		},
		{
			name: "keys are case-insensitive, door names are not",
			conf: "[OPTIONS]\nusesyslog\nLOGFILE = /var/log/Knockd.log\n" +
				"[openSSH]\nSEQUENCE = 1\nSeQ_TiMeOuT = 7\n[OpenSSH]\nsequence = 2\n",
			want: &Config{
				UseSyslog: true,
				LogFile:   "/var/log/Knockd.log",
				Doors: []*Door{
					with(door("openSSH", 4, seq(1)), func(d *Door) { d.SeqTimeout = 7 * time.Second }),
					door("OpenSSH", 7, seq(2)),
				},
			},
		},
		{
			name: "aliases Command, Command_6 and Timeout",
			conf: "[d]\nsequence = 1\ncommand = open %IP%\ncommand_6 = open6 %IP%\ntimeout = 9\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) {
				d.StartCommand = "open %IP%"
				d.StartCommand6 = "open6 %IP%"
				d.SeqTimeout = 9 * time.Second
			})}},
		},
		{
			name: "Start_Command and its alias are one key: the later wins",
			conf: "[d]\nsequence = 1\nstart_command = first\ncommand = second\n",
			want: &Config{Doors: []*Door{with(door("d", 1, seq(1)), func(d *Door) { d.StartCommand = "second" })}},
		},
		{
			name: "IPv4 and IPv6 targets",
			conf: "[four]\nsequence = 1\ntarget = 192.0.2.7\n[six]\nsequence = 2\ntarget = 2001:db8::7\n" +
				"[mapped]\nsequence = 3\ntarget = ::ffff:192.0.2.8\n",
			want: &Config{Doors: []*Door{
				with(door("four", 1, seq(1)), func(d *Door) { d.Target = netip.MustParseAddr("192.0.2.7") }),
				with(door("six", 4, seq(2)), func(d *Door) { d.Target = netip.MustParseAddr("2001:db8::7") }),
				with(door("mapped", 7, seq(3)), func(d *Door) { d.Target = netip.MustParseAddr("192.0.2.8") }),
			}},
		},
		{
			name: "sources: lists, bare addresses, host bits, mapped prefixes, several lines",
			conf: "[d]\nsequence = 1\nSource = 192.0.2.7, 2001:db8::/32,198.51.100.9/24\nsource = ::ffff:203.0.113.0/120,2001:db8::1\n" +
				"[e]\nsequence = 2\nsource = 0.0.0.0/0\n",
			want: &Config{Doors: []*Door{
				with(door("d", 1, seq(1)), func(d *Door) {
					d.Sources = []netip.Prefix{
						netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"),
						netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
						netip.MustParsePrefix("2001:db8::1/128"),
					}
				}),
				with(door("e", 5, seq(2)), func(d *Door) { d.Sources = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} }),
			}},
		},
		{
			name: "options and extensions",
			conf: "[options]\nUseSyslog\nLogFile = /var/log/knockd.log\nPidFile = /run/knockd.pid\n" +
				"Interface = eth0\nStateDir = /var/lib/knockd\nMaxAttempts = 5000\nMaxCommands = 4\nCommandLimit = 30\n" +
				"ControlSocket = /run/k/k.sock\nMetricsAddress = [::1]:9560\nLogFormat = JSON\n",
			want: &Config{
				UseSyslog: true, LogFile: "/var/log/knockd.log", PidFile: "/run/knockd.pid",
				Interface: "eth0", StateDir: "/var/lib/knockd", MaxAttempts: 5000, MaxCommands: 4, CommandLimit: 30 * time.Second,
				ControlSocket: "/run/k/k.sock", MetricsAddress: "[::1]:9560",
				LogFormat: LogJSON,
			},
		},
		{
			name: "repeated [options] and UseSyslog",
			conf: "[options]\nUseSyslog\nlogfile = /a\n[d]\nsequence = 1\n[options]\nUseSyslog\nlogfile = /b\n",
			want: &Config{UseSyslog: true, LogFile: "/b", Doors: []*Door{door("d", 4, seq(1))}},
		},
		{
			name: "indentation, comments, CRLF and a BOM",
			conf: "\ufeff# knockd.conf\r\n; also a comment\r\n  [options]  \r\n\tUseSyslog\r\n" +
				"\t[ openSSH ]\r\n\t\tsequence = 7000, 8000:UDP , 9000:Tcp\r\n\t# seq_timeout = 5\r\n\t\tcmd_timeout = 0\r\n",
			want: &Config{UseSyslog: true, Doors: []*Door{with(door("openSSH", 5, seq(7000, -8000, 9000)), func(d *Door) {
				d.CmdTimeout = 0
			})}},
		},
		{
			name: "section names with dots and DEFAULT are plain doors",
			conf: "[a]\nsequence = 1\n[a.b]\nsequence = 2\n[DEFAULT]\nsequence = 3\n",
			want: &Config{Doors: []*Door{door("a", 1, seq(1)), door("a.b", 3, seq(2)), door("DEFAULT", 5, seq(3))}},
		},
		{
			name: "one-time sequences",
			conf: "[hello]\none_time_sequences = $DIR/good.seq\ntcpflags = syn\n",
			want: &Config{Doors: []*Door{with(door("hello", 1, seq(6110, -6120, 6130)), func(d *Door) {
				d.OneTimeFile = r.Replace("$DIR/good.seq")
				d.OneTimeOffset = int64(len("# comment\n\n"))
				d.OneTimeText = " 6110,6120:udp,6130"
				d.Flags = wire.FlagFilter{Set: wire.SYN}
			})}},
		},
		{
			name: "no doors",
			conf: "# nothing\n",
			want: &Config{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("knockd.conf", []byte(r.Replace(tt.conf)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.Path = "knockd.conf"
			// Warnings have their own test.
			got.Warnings = nil
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string
	}{
		{"a start command", "[d]\nsequence = 1\ncommand = x\n", nil},
		{"only an IPv6 start command", "[d]\nsequence = 1\ncommand_6 = x\n", nil},
		{"no command", "[options]\nUseSyslog\n[logonly]\nsequence = 1\n",
			[]string{"knockd.conf:3: [logonly] has no Start_Command: knocks will only be logged"}},
		{"a stop command only", "[d]\nsequence = 1\n\nstop_command = y\n",
			[]string{"knockd.conf:4: [d] has a Stop_Command but no Start_Command"}},
		{"an IPv6 stop command only", "[d]\nsequence = 1\nstop_command_6 = y\n",
			[]string{"knockd.conf:3: [d] has a Stop_Command_6 but no Start_Command_6 or Start_Command"}},
		{"both sets", "[d]\nsequence = 1\nnft_set = inet k a\nnft_set_6 = inet k b\n", nil},
		{"an IPv4 ipset only", "[d]\nsequence = 1\nipset = a\n",
			[]string{"knockd.conf:1: [d] has an IPSet but no IPSet_6: IPv6 knockers are added to no ipset"}},
		{"an IPv4 set only", "[d]\nsequence = 1\nnft_set = inet k a\n",
			[]string{"knockd.conf:1: [d] has an NFT_Set but no NFT_Set_6: IPv6 knockers are added to no set"}},
		{"an IPv6 set only", "[d]\nsequence = 1\nnft_set_6 = inet k b\n",
			[]string{"knockd.conf:1: [d] has an NFT_Set_6 but no NFT_Set: IPv4 knockers are added to no set"}},
		{"two doors", "[a]\nsequence = 1\n[b]\nsequence = 2\n", []string{
			"knockd.conf:1: [a] has no Start_Command: knocks will only be logged",
			"knockd.conf:3: [b] has no Start_Command: knocks will only be logged",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("knockd.conf", []byte(tt.conf))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, c.Warnings); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		key     string
		options bool
		want    string
	}{
		{"seq_timout", false, " (did you mean Seq_Timeout?)"},
		{"seqtimeout", false, " (did you mean Seq_Timeout?)"},
		{"start-command", false, " (did you mean Start_Command?)"},
		{"onetimesequences", false, " (did you mean One_Time_Sequences?)"},
		{"tcpflag", false, " (did you mean TCPFlags?)"},
		{"command6", false, " (did you mean Command_6?)"},
		{"usesyslogs", true, " (did you mean UseSyslog?)"},
		{"pid_file", true, " (did you mean PidFile?)"},
		{"logfile_", false, " (did you mean LogFile?)"},
		{"xyzzy", true, "; the keys of [options] are CommandLimit, ControlSocket, Interface, LogFile, LogFormat, MaxAttempts, MaxCommands, MetricsAddress, PidFile, StateDir, UseSyslog"},
	}
	for _, tt := range tests {
		if got := suggest(tt.key, tt.options); got != tt.want {
			t.Errorf("suggest(%q, %v) = %q, want %q", tt.key, tt.options, got, tt.want)
		}
	}
}

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/cmddoc"
	"github.com/knock-go/knock/internal/knockd"
)

// update rewrites the generated files under packaging/ instead of
// comparing them: go test ./cmd/knockd ./cmd/knock -run Generated -update
var update = flag.Bool("update", false, "rewrite the generated manual page and completion under packaging/")

// directives describes each knockd.conf key, by config.Key.Name; aliases
// are listed beside their key. TestGenerated fails when a key the parser
// knows is missing here, or when this names a key it does not know.
var directives = map[string]string{
	"UseSyslog":          "Log to syslog (`/dev/log`), as Debian's knockd does: facility daemon, level notice, tag `knockd:`. A bare word, without `=`.",
	"LogFile":            "Append log lines to *file*, each as `[YYYY-MM-DD HH:MM] message`. **-g** wins over it.",
	"PidFile":            "Write the pid to *file* when run with **-d**. The default is `/var/run/knockd.pid`; **-p** wins over it. A change needs a restart.",
	"Interface":          "Listen on *name*, or a comma-separated list, or `any` (the default: every interface; knockd 0.8 listened on eth0). **-i** wins over it.",
	"StateDir":           "Keep pending stop commands in *dir*. See **FILES**. A change needs a restart. Not in knockd 0.8.",
	"MaxAttempts":        "Knock attempts in progress at most (default 524288, 48 MiB at most). Under a flood a newcomer pushes out the oldest attempt at stage 1 of the address family holding more of them. Not in knockd 0.8.",
	"MaxCommands":        "Start commands running at once (default 16), and as many again for stop commands. Each door queues up to 1024 start commands and the doors take turns. Not in knockd 0.8.",
	"CommandLimit":       "Seconds a command may run (default 60); one still running then is logged and its process group killed. Not in knockd 0.8.",
	"Sequence":           "The knocks, as *port*[`:tcp`|`:udp`][`,`*port*[`:tcp`|`:udp`]...], TCP by default, at most 32. A later line replaces an earlier one.",
	"One_Time_Sequences": "Read the sequence from *file*, one a line; each line, once used, has its first character overwritten with `#` in place (start each line with a space), and the next line becomes the sequence. When the file runs out the door is disabled and the others go on.",
	"Seq_Timeout":        "Seconds from the first knock within which the sequence must be complete (default 25).",
	"TCPFlags":           "The TCP flags a knock must have: a comma-separated list of `fin`, `syn`, `rst`, `psh`, `ack`, `urg`, each with `!` for must not have. Several lines add up. A TCP packet with other flags is ignored for that door.",
	"Start_Command":      "The command to run, through `/bin/sh -c`, when the sequence is complete; every `%IP%` becomes the knocker's address.",
	"Start_Command_6":    "The command for an IPv6 knocker; without it, IPv6 knockers get **Start_Command**.",
	"Stop_Command":       "The command to run **Cmd_Timeout** seconds after **Start_Command**. It is kept on disk until it has run (see **FILES**), run at once at shutdown, and run after a crash at the next start.",
	"Stop_Command_6":     "The stop command for an IPv6 knocker; without it, IPv6 knockers get **Stop_Command**.",
	"Cmd_Timeout":        "Seconds between the start and the stop command (default 10); for kernel sets, how long the knocker stays in the set.",
	"Target":             "The address the knocks must be sent to, for a router or a host with several addresses. Without it, any address of this host counts.",
	"Source":             "The addresses, as a comma-separated list of addresses and CIDR prefixes, IPv4 and IPv6, that the door takes knocks from; several lines add up. A knock from any other address counts for nothing on this door. Not in knockd 0.8.",
	"NFT_Set":            "Add an IPv4 knocker to the nftables set *family table set* (such as `inet knockd ssh4`) for **Cmd_Timeout** seconds, over netlink: the kernel removes it, even if knockd has died. The set must exist with `flags timeout`. Needs CAP_NET_ADMIN. Not in knockd 0.8.",
	"NFT_Set_6":          "The same for an IPv6 knocker (such as `inet knockd ssh6`). Not in knockd 0.8.",
	"IPSet":              "Add an IPv4 knocker to the ipset *name* (hash:ip, created with `timeout`) for **Cmd_Timeout** seconds. Needs CAP_NET_ADMIN. Not in knockd 0.8.",
	"IPSet_6":            "The same for an IPv6 knocker (an ipset of family inet6). Not in knockd 0.8.",
	"ControlSocket":      "The path of the control socket that answers **--status** and **--revoke**: mode 0600, answering only knockd's own uid and root. The default is named after the configuration file, under `$RUNTIME_DIRECTORY`, `/run/knockd` for root, or `$XDG_RUNTIME_DIR/knockd`. **--control** wins over it. Read at start only. Not in knockd 0.8.",
	"MetricsAddress":     "Serve Prometheus metrics (`knockd_*`, the Go runtime's and the process's) at http://*host:port*/metrics; off by default. **--metrics** wins over it. Read at start only. Not in knockd 0.8.",
	"LogFormat":          "`text` (the default: knockd 0.8's lines) or `json`: each line of the **-v** output and of the LogFile as one JSON object with `time`, `event`, `msg` and, for a knock, `door`, `src` and `stage`. Syslog keeps the text form. **--log-format** wins over it. Not in knockd 0.8.",
	"Sequence_Secret":    "Derive the door's sequence from the base32 secret in *file* and the time (an HMAC-SHA256 of the step counter, as RFC 6238 counts it): the sequences of the previous, current and next step open the door, each once only, from any source, across restarts (the used steps are kept in the state directory). The file must not be readable by group or others. Instead of **Sequence** or **One_Time_Sequences**. Not in knockd 0.8.",
	"Sequence_Length":    "With **Sequence_Secret**: the knocks in a sequence (default 3, at most 32). Not in knockd 0.8.",
	"Sequence_Ports":     "With **Sequence_Secret**: the range the ports are drawn from (default 20000-26999). Not in knockd 0.8.",
	"Sequence_Step":      "With **Sequence_Secret**: seconds between two sequences (default 30, at least 2). Not in knockd 0.8.",
	"Sequence_Proto":     "With **Sequence_Secret**: `tcp` (the default) or `udp`. Not in knockd 0.8.",
}

// directiveValues names the value of each key in the page's terms.
var directiveValues = map[string]string{
	"LogFile": "file", "PidFile": "file", "Interface": "name", "StateDir": "dir",
	"MaxAttempts": "n", "MaxCommands": "n", "CommandLimit": "seconds",
	"Sequence": "sequence", "One_Time_Sequences": "file", "Seq_Timeout": "seconds",
	"TCPFlags": "flags", "Start_Command": "command", "Start_Command_6": "command",
	"Stop_Command": "command", "Stop_Command_6": "command", "Cmd_Timeout": "seconds",
	"Target": "address", "Source": "prefixes", "NFT_Set": "family table set",
	"NFT_Set_6": "family table set", "IPSet": "name", "IPSet_6": "name",
	"ControlSocket": "path", "MetricsAddress": "host:port", "LogFormat": "text|json", "Sequence_Secret": "file", "Sequence_Length": "n",
	"Sequence_Ports": "low-high", "Sequence_Step": "seconds", "Sequence_Proto": "tcp|udp",
}

// configuration is the page's CONFIGURATION section, one entry per key
// the parser knows.
func configuration(t *testing.T) string {
	t.Helper()
	aliases := map[string][]string{}
	var options, doors []config.Key
	known := map[string]bool{}
	for _, k := range config.Keys() {
		if k.AliasOf != "" {
			aliases[k.AliasOf] = append(aliases[k.AliasOf], k.Name)
			continue
		}
		known[k.Name] = true
		if _, ok := directives[k.Name]; !ok {
			t.Errorf("knockd.conf key %s is not described in directives: describe it, then run go test ./cmd/knockd -run Generated -update", k.Name)
		}
		if k.Door {
			doors = append(doors, k)
		} else {
			options = append(options, k)
		}
	}
	for name := range directives {
		if !known[name] {
			t.Errorf("directives describes %s, which is not a knockd.conf key", name)
		}
	}
	entry := func(b *strings.Builder, k config.Key) {
		names := append([]string{k.Name}, aliases[k.Name]...)
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("**" + n + "**")
			if v := directiveValues[n]; v != "" {
				fmt.Fprintf(b, " = *%s*", v)
			} else if v := directiveValues[k.Name]; v != "" {
				fmt.Fprintf(b, " = *%s*", v)
			}
		}
		fmt.Fprintf(b, "\n: %s\n\n", directives[k.Name])
	}
	var b strings.Builder
	b.WriteString("knockd reads its configuration from `/etc/knockd.conf`, or the file of **-c**. " +
		"Sections are `[name]`: `[options]` holds the global options, every other section is a door. " +
		"A line is *key* `=` *value*; keys are case-insensitive, the value is everything after the first `=`, trimmed, " +
		"and may hold `=`, `#` and `;`. Lines starting with `#` or `;` are comments. " +
		"A value knockd 0.8 would have read sloppily (`7000 8000`, a trailing comma, `5s`) stops start-up with " +
		"*file*`:`*line*`:` and what is wrong. Keys marked as not in knockd 0.8 make knockd 0.8 refuse the file.\n\n")
	b.WriteString("## [options]\n\n")
	for _, k := range options {
		entry(&b, k)
	}
	b.WriteString("## Doors\n\n")
	b.WriteString("A door needs a sequence (**Sequence** or **One_Time_Sequences**) and something to do: " +
		"commands, kernel sets, or both.\n\n")
	for _, k := range doors {
		entry(&b, k)
	}
	b.WriteString("## Example\n\n" +
		"    [options]\n" +
		"        UseSyslog\n\n" +
		"    [openSSH]\n" +
		"        sequence      = 7000,8000,9000\n" +
		"        seq_timeout   = 5\n" +
		"        tcpflags      = syn\n" +
		"        start_command = /usr/sbin/iptables -I INPUT -s %IP% -p tcp --syn --dport 22 -j ACCEPT\n" +
		"        cmd_timeout   = 10\n" +
		"        stop_command  = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --syn --dport 22 -j ACCEPT\n")
	return b.String()
}

// page is knockd(1).
func page(t *testing.T) cmddoc.Page {
	return cmddoc.Page{
		App:    newApp(io.Discard, io.Discard),
		Source: "knock",
		Synopsis: "**knockd** [**-dDlv4t**] [**-i** *interface*] [**-c** *file*] [**-p** *file*] [**-g** *file*] " +
			"[**--backend** *how*] [**--state-dir** *dir*]\n\n**knockd** **-V** | **-h**",
		Description: "**knockd** watches the traffic reaching this host for sequences of knocks: TCP or UDP packets " +
			"sent to a list of ports in order. When a source address completes a door's sequence in time, " +
			"knockd opens the door for it: it runs the door's start command (typically a firewall rule that lets " +
			"that address in) and, after **Cmd_Timeout**, its stop command; or it adds the address to an nftables " +
			"set or an ipset with a timeout, which the kernel removes by itself.\n\n" +
			"This knockd is a Go rewrite of knockd 0.8 that reads the same configuration and takes the same " +
			"flags, with the same log lines. It needs no libpcap; see **BACKENDS** for the privileges it needs. " +
			"Options take GNU getopt_long's forms: `-c file`, `-cfile`, `--config=file`, `--config file`, " +
			"bundled short options (`-dv`), and any unambiguous prefix of a long option.\n\n" +
			"knockd logs `IP: door: Stage N`, `IP: door: OPEN SESAME`, `door: running command: CMD`, " +
			"`IP: door: sequence timeout (stage N)`, `IP: door: command timeout`, and " +
			"`door: command returned non-zero status code (N)`, with **-v** on standard output, in the **LogFile**, " +
			"and with **UseSyslog** to syslog.",
		Placeholders: map[string]string{"pidfile": "file", "logfile": "file", "interface": "interface"},
		Options: map[string]string{
			"interface": "Knocks count when sent to any of this host's addresses (or to a door's **Target**). An interface absent at start is waited for (raw backend).",
			"daemon":    "Detach from the terminal and write the pid file; the parent exits once the daemon listens.",
			"config":    "A bad file stops start-up with *file*`:`*line*`:` and what is wrong.",
			"debug":     "Also show what libraries log.",
			"lookup":    "The lookups run in the background; a line shows the name once it is known. Whoever controls the knocker's DNS controls the text.",
			"pidfile":   "Written with **-d** only. It wins over **PidFile**.",
			"logfile":   "It wins over **LogFile**.",
			"verbose":   "Print the log lines on standard output.",
			"check":     "It also prints what the backend would bind and need, and whether a state directory is needed; it exits 0, or 1 with the configuration's message. It runs no command, so it can run beside the daemon.",
			"backend":   "See **BACKENDS**.",
			"state-dir": "See **FILES**.",
			"version":   "Print `knockd 0.8` (the release this replaces), then this build's version and commit.",
		},
		AddedNote: "Not in knockd 0.8.",
		Sections: []cmddoc.Section{
			{Title: "CONFIGURATION", Body: configuration(t)},
			{Title: "BACKENDS", Body: "**--backend auto** (the default) takes **raw** when the process may open a packet socket, else **listener**, and logs which and why.\n\n" +
				"**raw** needs CAP_NET_RAW only (`setcap cap_net_raw+ep /usr/sbin/knockd`, or root). It reads an AF_PACKET socket through a BPF " +
				"program built from the doors, so the kernel hands over only candidate knocks, and it sees knocks on ports the firewall drops: " +
				"the knock ports stay closed and silent. Linux only.\n\n" +
				"**listener** needs no privileges: it binds a TCP listener or UDP socket on each knock port. The knock ports then look open to a " +
				"port scanner; TCP flags cannot be seen, so a door whose **TCPFlags** needs anything but a plain SYN cannot open (reported at start); " +
				"a TCP knock must complete its handshake (knock 0.8's client does not wait for it); ports below 1024 need CAP_NET_BIND_SERVICE.\n\n" +
				"Doors with **NFT_Set** or **IPSet** also need CAP_NET_ADMIN; doors with commands need whatever their commands need (root for iptables)."},
			{Title: "FILES", Body: "`/etc/knockd.conf`\n: The configuration.\n\n" +
				"`/etc/default/knockd`\n: Read by the systemd unit and the init script: **KNOCKD_OPTS** holds the options; the init script starts knockd only with **START_KNOCKD=1**.\n\n" +
				"`/var/run/knockd.pid`\n: The pid file, with **-d**.\n\n" +
				"`/var/lib/knockd/`\n: The state: pending stop commands, kept so that a stop command runs even after a crash. Each configuration has its own directory under it, named after the configuration's absolute path " +
				"(`/etc/knockd.conf` gives `etc_knockd.conf-59fb8fc5`), locked while an instance runs. The base is `$STATE_DIRECTORY` (systemd's **StateDirectory=**) when set, `/var/lib/knockd` for root, " +
				"else `$XDG_STATE_HOME/knockd` or `~/.local/state/knockd`; **StateDir** or **--state-dir** names the directory itself. It must belong to knockd's user and not be writable by group or others. " +
				"A configuration without **Stop_Command** needs none."},
			{Title: "SIGNALS", Body: "**SIGHUP**\n: Re-read the configuration (`re-reading config file: PATH`). A broken file is logged and the running configuration stays.\n\n" +
				"**SIGTERM**, **SIGINT**\n: Shut down (`shutting down`): pending stop commands run at once, so no opening outlives the daemon."},
			{Title: "EXIT STATUS", Body: "**0**\n: Success, after **-h**, **-V**, a good **-t**, or a shutdown by SIGTERM or SIGINT. An unknown option prints the usage and exits 0, as knockd 0.8 does.\n\n" +
				"**1**\n: The configuration cannot be read or is wrong, a knock port is in use (listener), a capture or set cannot be opened, or the state directory is unsafe or held by another instance; one message says which."},
			{Title: "ENVIRONMENT", Body: "**STATE_DIRECTORY**, **XDG_STATE_HOME**, **HOME**\n: Where the state is kept (see **FILES**).\n\n" +
				"**POSIXLY_CORRECT**\n: Options end at the first operand, as with getopt_long."},
			{Title: "SEE ALSO", Body: "**knock**(1), **iptables**(8), **nft**(8), **ipset**(8), **systemd.exec**(5)\n\n" +
				"The README of https://github.com/knock-go/knock lists where this knockd differs from knockd 0.8."},
		},
	}
}

// TestGenerated checks packaging/man/knockd.1 and
// packaging/completion/knockd against knockd's flags and the
// configuration keys: a flag or key added without them fails here.
func TestGenerated(t *testing.T) {
	man, err := page(t).Man()
	if err != nil {
		t.Fatal(err)
	}
	comp, err := completion().Bash()
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, "man/knockd.1", man)
	checkGenerated(t, "completion/knockd", []byte(comp))
	zsh, err := completion().Zsh()
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, "completion/_knockd", []byte(zsh))
	if _, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command("zsh", "-n", filepath.Join("..", "..", "packaging", "completion", "_knockd")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n packaging/completion/_knockd: %v\n%s", err, out)
		}
	}
}

// completion is knockd's bash completion.
func completion() cmddoc.Completion {
	return cmddoc.Completion{
		App: newApp(io.Discard, io.Discard),
		Values: map[string]cmddoc.Values{
			"interface":  cmddoc.Interfaces,
			"config":     cmddoc.Files,
			"pidfile":    cmddoc.Files,
			"logfile":    cmddoc.Files,
			"state-dir":  cmddoc.Dirs,
			"backend":    cmddoc.Words(knockd.BackendNames()...),
			"log-format": cmddoc.Words("text", "json"),
			"replay":     cmddoc.Files,
			"control":    cmddoc.Files,
			"metrics":    cmddoc.Anything,
			"revoke":     cmddoc.Anything,
			"door":       cmddoc.Anything,
		},
	}
}

func checkGenerated(t *testing.T, rel string, got []byte) {
	t.Helper()
	cmddoc.CheckGenerated(t, *update, "knockd", rel, got)
}

// TestManRenders renders both generated pages as man(1) does and fails
// on any warning.
func TestManRenders(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man is not installed (apt-get install man-db)")
	}
	for _, name := range []string{"knockd.1", "knock.1"} {
		path := filepath.Join("..", "..", "packaging", "man", name)
		cmd := exec.Command("man", "--warnings", "-l", path)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_FORMATTING=", "LC_ALL=C.UTF-8")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings -l %s: %v\n%s", name, err, stderr.String())
		}
		if !strings.Contains(string(out), "OPTIONS") {
			t.Errorf("man -l %s: no OPTIONS section in\n%s", name, out)
		}
	}
}

// complete runs the bash completion in script for words, the last
// being the word under the cursor, in dir, and returns COMPREPLY.
func complete(t *testing.T, script, dir string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+w+"'")
	}
	prog := fmt.Sprintf(". %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_%s\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n",
		script, strings.Join(quoted, " "), len(words)-1, words[0])
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

// TestBashCompletion runs the generated completion in bash: every flag
// of knockd completes, and the values of --backend, -c and --state-dir.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "packaging", "completion", "knockd"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "door.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, w := range complete(t, script, dir, "knockd", "-") {
		got[w] = true
	}
	for _, f := range newApp(io.Discard, io.Discard).Flags {
		for _, n := range f.Names() {
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			if !got[dash+n] {
				t.Errorf("knockd - does not complete to %s%s", dash, n)
			}
		}
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"knockd", "--backend", ""}, strings.Join(knockd.BackendNames(), " ")},
		{[]string{"knockd", "--backend", "=", "l"}, "listener"},
		{[]string{"knockd", "-v", "-c", "do"}, "door.conf"},
		{[]string{"knockd", "--config", "=", ""}, "door.conf state"},
		{[]string{"knockd", "--state-dir", ""}, "state"},
		{[]string{"knockd", "--verb"}, "--verbose"},
	} {
		got := complete(t, script, dir, tt.words...)
		sort.Strings(got)
		want := strings.Fields(tt.want)
		sort.Strings(want)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("completion of %q = %q, want %q", tt.words, got, want)
		}
	}
}

package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/knock-go/knock/internal/cmddoc"
)

// update rewrites the generated files under packaging/ instead of
// comparing them: go test ./cmd/knockd ./cmd/knock -run Generated -update
var update = flag.Bool("update", false, "rewrite the generated manual page and completion under packaging/")

// app is knock's command definition, as run builds it.
func app() *cli.App {
	var f flags
	return &cli.App{Name: "knock", Usage: "port-knock client", UsageText: usageText, Flags: f.list()}
}

// page is knock(1).
func page() cmddoc.Page {
	return cmddoc.Page{
		App:    app(),
		Source: "knock",
		Synopsis: "**knock** [**-uv46**] [**-d** *t*] [**--timeout** *t*] *host* *port*[`:`*proto*] [*port*[`:`*proto*]] ...\n\n" +
			"**knock** **-V** | **-h**",
		Description: "**knock** sends a sequence of knocks to *host*: for each *port*, in order, a TCP connection attempt or, " +
			"with `:udp` after the port or with **-u**, one UDP datagram. A **knockd**(1) watching that host opens a door " +
			"when the sequence matches one of its doors. *proto* is `tcp` or `udp` (any case).\n\n" +
			"This knock is a Go rewrite of knock 0.8 with its command line, output and exit statuses. One difference: " +
			"knock 0.8 closes a TCP knock's socket right after sending the SYN, which a knockd using bound sockets " +
			"(`--backend listener`) never sees across a real network; this knock waits for the handshake, up to " +
			"**--timeout** per TCP knock, and then closes the connection at once.\n\n" +
			"Options take GNU getopt_long's forms, and may follow the operands.",
		Options: map[string]string{
			"udp":     "A port's own `:tcp` still wins.",
			"delay":   "The wait follows each knock, the last one included.",
			"ipv4":    "The last of **-4** and **-6** wins.",
			"ipv6":    "The last of **-4** and **-6** wins.",
			"verbose": "Print `hitting tcp HOST:PORT` for each knock.",
			"version": "Print `knock 0.8` (the release this mirrors), then this build's version and commit.",
			"timeout": "A port the firewall drops costs that long.",
		},
		AddedNote: "Not in knock 0.8.",
		Sections: []cmddoc.Section{
			{Title: "EXIT STATUS", Body: "**0**\n: Every knock was sent, or **-h** or **-V**.\n\n" +
				"**1**\n: A bad command line (with the usage), a host that does not resolve, or a knock that could not be sent.\n\n" +
				"**128**+*n*\n: Interrupted by signal *n* (SIGINT, SIGTERM)."},
			{Title: "EXAMPLES", Body: "    knock myserver.example.com 7000 8000 9000\n" +
				"    knock -v myserver.example.com 123:tcp 456:udp 789:tcp\n" +
				"    knock -u -d 100 192.0.2.1 2222 3333 4444"},
			{Title: "SEE ALSO", Body: "**knockd**(1)"},
		},
	}
}

// completion is knock's bash completion.
func completion() cmddoc.Completion {
	return cmddoc.Completion{
		App: app(),
		Values: map[string]cmddoc.Values{"delay": cmddoc.Anything, "timeout": cmddoc.Anything,
			"secret-file": cmddoc.Files, "length": cmddoc.Anything, "ports": cmddoc.Anything,
			"step": cmddoc.Anything, "proto": cmddoc.Words("tcp", "udp"), "time": cmddoc.Anything},
		FirstOperand: cmddoc.Hosts,
	}
}

// TestGenerated checks packaging/man/knock.1 and
// packaging/completion/knock against knock's flags: a flag added
// without them fails here.
func TestGenerated(t *testing.T) {
	man, err := page().Man()
	if err != nil {
		t.Fatal(err)
	}
	comp, err := completion().Bash()
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, "man/knock.1", man)
	checkGenerated(t, "completion/knock", []byte(comp))
	zsh, err := completion().Zsh()
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, "completion/_knock", []byte(zsh))
	if _, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command("zsh", "-n", filepath.Join("..", "..", "packaging", "completion", "_knock")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n packaging/completion/_knock: %v\n%s", err, out)
		}
	}
}

func checkGenerated(t *testing.T, rel string, got []byte) {
	t.Helper()
	cmddoc.CheckGenerated(t, *update, "knock", rel, got)
}

// TestBashCompletion runs the generated completion in bash: every flag
// completes, and the first operand completes to host names.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "packaging", "completion", "knock"))
	if err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("198.18.0.1 doorhost.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(words ...string) string {
		prog := fmt.Sprintf(". %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_knock\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n",
			script, "'"+strings.Join(words, "' '")+"'", len(words)-1)
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
		cmd.Env = append(os.Environ(), "HOSTFILE="+hosts)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	all := " " + run("knock", "-") + " "
	for _, f := range app().Flags {
		for _, n := range f.Names() {
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			if !strings.Contains(all, " "+dash+n+" ") {
				t.Errorf("knock - does not complete to %s%s (got%s)", dash, n, all)
			}
		}
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"knock", "door"}, "doorhost.example"},
		{[]string{"knock", "-v", "-d", "10", "door"}, "doorhost.example"},
		{[]string{"knock", "--timeout", "=", "10", "door"}, "doorhost.example"},
		{[]string{"knock", "doorhost.example", "door"}, ""},
		{[]string{"knock", "-d", ""}, ""},
	} {
		if got := run(tt.words...); got != tt.want {
			t.Errorf("completion of %q = %q, want %q", tt.words, got, tt.want)
		}
	}
}

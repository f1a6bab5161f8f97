package cmdline

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/urfave/cli/v2"
)

// knockdFlags are knockd's kinds of flags: short and long names, values,
// long-only ones, and help and version.
var knockdFlags = []cli.Flag{
	&cli.StringFlag{Name: "interface", Aliases: []string{"i"}},
	&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}},
	&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "/etc/knockd.conf"},
	&cli.BoolFlag{Name: "debug", Aliases: []string{"D"}},
	&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}},
	&cli.BoolFlag{Name: "only-ip-v4", Aliases: []string{"4"}},
	&cli.BoolFlag{Name: "check", Aliases: []string{"t"}, Category: AddedCategory},
	&cli.StringFlag{Name: "state-dir", Category: AddedCategory},
	&cli.BoolFlag{Name: "version", Aliases: []string{"V"}},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}},
	// Two long names for one flag: one possibility, not two.
	&cli.StringFlag{Name: "timeout", Aliases: []string{"time-out"}},
}

func TestTable(t *testing.T) {
	t.Parallel()
	got := Table(knockdFlags)
	want := []Opt{
		{Name: "interface", Shorts: []byte("i"), Longs: []string{"interface"}, HasArg: true},
		{Name: "daemon", Shorts: []byte("d"), Longs: []string{"daemon"}},
		{Name: "config", Shorts: []byte("c"), Longs: []string{"config"}, HasArg: true},
		{Name: "debug", Shorts: []byte("D"), Longs: []string{"debug"}},
		{Name: "verbose", Shorts: []byte("v"), Longs: []string{"verbose"}},
		{Name: "only-ip-v4", Shorts: []byte("4"), Longs: []string{"only-ip-v4"}},
		{Name: "check", Shorts: []byte("t"), Longs: []string{"check"}, Added: true},
		{Name: "state-dir", Longs: []string{"state-dir"}, HasArg: true, Added: true},
		{Name: "version", Shorts: []byte("V"), Longs: []string{"version"}, Final: true},
		{Name: "help", Shorts: []byte("h"), Longs: []string{"help"}, Final: true},
		{Name: "timeout", Longs: []string{"timeout", "time-out"}, HasArg: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Table (-want +got):\n%s", diff)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    string
		want    string
		wantErr string
	}{
		{args: "", want: "--"},
		// Attached and separate values.
		{args: "-ieth1", want: "--interface=eth1 --"},
		{args: "-i eth1", want: "--interface=eth1 --"},
		{args: "-c/etc/knockd.conf", want: "--config=/etc/knockd.conf --"},
		{args: "--config=/x", want: "--config=/x --"},
		{args: "--config /x", want: "--config=/x --"},
		{args: "--config= -v", want: "--config= --verbose --"},
		{args: "--config=a=b", want: "--config=a=b --"},
		// A value is the next word whatever it looks like.
		{args: "-c -v", want: "--config=-v --"},
		{args: "-c --", want: "--config=-- --"},
		{args: "--config -h", want: "--config=-h --"},
		// Bundles, one that ends with a value-taking flag.
		{args: "-dv", want: "--daemon --verbose --"},
		{args: "-dvc/x", want: "--daemon --verbose --config=/x --"},
		{args: "-dvc /x", want: "--daemon --verbose --config=/x --"},
		{args: "-dci -v", want: "--daemon --config=i --verbose --"},
		{args: "-4Dt", want: "--only-ip-v4 --debug --check --"},
		// Unambiguous prefixes.
		{args: "--inter eth1", want: "--interface=eth1 --"},
		{args: "--verb", want: "--verbose --"},
		{args: "--conf=/x", want: "--config=/x --"},
		{args: "--st /s --ch --o", want: "--state-dir=/s --check --only-ip-v4 --"},
		{args: "--time-o=5", want: "--timeout=5 --"},
		{args: "--tim 5", want: "--timeout=5 --"},
		// The last of a repeated option is urfave/cli's to take.
		{args: "-ca -cb", want: "--config=a --config=b --"},
		// Operands: permuted behind the options, "--" ends the options.
		{args: "a -v b", want: "--verbose -- a b"},
		{args: "host 7000 -v", want: "--verbose -- host 7000"},
		{args: "-v -- -d x", want: "--verbose -- -d x"},
		{args: "-- --", want: "-- --"},
		{args: "- -v", want: "--verbose -- -"},
		// Help and version act where they stand.
		{args: "-c/x -V -x", want: "--version"},
		{args: "-vh", want: "--help"},
		{args: "stray --vers --bogus", want: "--version"},
		{args: "--help=x", wantErr: "option '--help' doesn't allow an argument"},

		{args: "-x", wantErr: "invalid option -- 'x'"},
		{args: "-vx", wantErr: "invalid option -- 'x'"},
		{args: "-x -V", wantErr: "invalid option -- 'x'"},
		{args: "a -1", wantErr: "invalid option -- '1'"},
		{args: "--bogus", wantErr: "unrecognized option '--bogus'"},
		{args: "--bogus=1", wantErr: "unrecognized option '--bogus=1'"},
		{args: "---v", wantErr: "unrecognized option '---v'"},
		{args: "--d", wantErr: "option '--d' is ambiguous; possibilities: '--daemon' '--debug'"},
		{args: "--de=1", wantErr: "option '--debug' doesn't allow an argument"},
		{args: "--=x", wantErr: "option '--=x' is ambiguous; possibilities: '--interface' '--daemon' '--config' '--debug' '--verbose' '--only-ip-v4' '--version' '--help' '--timeout'"},
		{args: "--ver", wantErr: "option '--ver' is ambiguous; possibilities: '--verbose' '--version'"},
		// Ambiguous only with an added option: 0.8's meaning stays.
		{args: "--c /x", want: "--config=/x --"},
		{args: "--s /x", want: "--state-dir=/x --"},
		{args: "-i", wantErr: "option requires an argument -- 'i'"},
		{args: "-dvc", wantErr: "option requires an argument -- 'c'"},
		{args: "--config", wantErr: "option '--config' requires an argument"},
		{args: "--conf", wantErr: "option '--config' requires an argument"},
		{args: "--verbose=1", wantErr: "option '--verbose' doesn't allow an argument"},
		{args: "--verb=", wantErr: "option '--verbose' doesn't allow an argument"},
	}
	for _, tt := range tests {
		got, err := Normalize(knockdFlags, strings.Fields(tt.args))
		if tt.wantErr != "" {
			ge, ok := err.(*Error)
			if !ok || ge.Msg != tt.wantErr {
				t.Errorf("Normalize(%s) error = %#v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Normalize(%s): %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(strings.Fields(tt.want), got); diff != "" {
			t.Errorf("Normalize(%s) (-want +got):\n%s", tt.args, diff)
		}
	}
}

func TestNormalizeEmptyWords(t *testing.T) {
	t.Parallel()
	got, err := Normalize(knockdFlags, []string{"-c", "", "", "-i", ""})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"--config=", "--interface=", "--", ""}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestNormalizePosixlyCorrect: with $POSIXLY_CORRECT, getopt_long stops
// at the first operand.
func TestNormalizePosixlyCorrect(t *testing.T) {
	t.Setenv("POSIXLY_CORRECT", "1")
	got, err := Normalize(knockdFlags, strings.Fields("-v host -x -- -d"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Fields("--verbose -- host -x -- -d"), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestNormalizeRoundTrip hands Normalize's output to urfave/cli and
// checks that it reads every form as getopt_long does.
func TestNormalizeRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args                   string
		config, iface, state   string
		daemon, verbose, check bool
		operands               string
	}{
		{args: "", config: "/etc/knockd.conf"},
		{args: "-dvc/x", config: "/x", daemon: true, verbose: true},
		{args: "-dvc /x", config: "/x", daemon: true, verbose: true},
		{args: "--conf=/x --verb -ieth1", config: "/x", iface: "eth1", verbose: true},
		{args: "--config /x --inter eth1 -t", config: "/x", iface: "eth1", check: true},
		{args: "-c -v", config: "-v"},
		{args: "-c /a -c/b", config: "/b"},
		{args: "--state-dir=--x -c=y", config: "=y", state: "--x"},
		{args: "a -v -- -d b", config: "/etc/knockd.conf", verbose: true, operands: "a -d b"},
	}
	for _, tt := range tests {
		canon, err := Normalize(knockdFlags, strings.Fields(tt.args))
		if err != nil {
			t.Errorf("Normalize(%s): %v", tt.args, err)
			continue
		}
		app := &cli.App{Flags: knockdFlags, HideHelp: true, HideVersion: true}
		ran := false
		app.Action = func(c *cli.Context) error {
			ran = true
			got := []any{c.String("config"), c.String("interface"), c.String("state-dir"),
				c.Bool("daemon"), c.Bool("verbose"), c.Bool("check"), strings.Join(c.Args().Slice(), " ")}
			want := []any{tt.config, tt.iface, tt.state, tt.daemon, tt.verbose, tt.check, tt.operands}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: urfave/cli reads %q as (-want +got):\n%s", tt.args, canon, diff)
			}
			return nil
		}
		if err := app.Run(append([]string{"knockd"}, canon...)); err != nil || !ran {
			t.Errorf("%s: urfave/cli on %q: ran %v, %v", tt.args, canon, ran, err)
		}
	}
}

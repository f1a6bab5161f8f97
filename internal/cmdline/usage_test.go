package cmdline

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/urfave/cli/v2"
)

func TestWriteUsage(t *testing.T) {
	t.Parallel()
	app := &cli.App{
		UsageText: "prog [options] <x>",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "network `int`erface to listen on"},
			&cli.StringFlag{Name: "delay", Aliases: []string{"d"}, Usage: "wait `<t>` milliseconds"},
			&cli.StringFlag{Name: "pidfile", Aliases: []string{"p"}, Usage: "use an alternate pidfile"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "be `very` verbose"},
			&cli.StringFlag{Name: "state-dir", Usage: "keep state in `dir`"},
			&cli.StringFlag{Name: "timeout", Usage: "wait at most `<t>` ms\n(default 500)"},
			&cli.BoolFlag{Name: "secret", Hidden: true, Usage: "not shown"},
			&cli.StringFlag{Name: "a-very-long-option-name", Usage: "`value` still two spaces away"},
			&cli.BoolFlag{Name: "x", Usage: "short only"},
			&cli.BoolFlag{Name: "bare"},
		},
	}
	var b strings.Builder
	WriteUsage(&b, app, 23)
	want := `usage: prog [options] <x>
options:
  -i, --interface <int>  network interface to listen on
  -d, --delay <t>      wait <t> milliseconds
  -p, --pidfile        use an alternate pidfile
  -v, --verbose        be very verbose
      --state-dir <dir>  keep state in dir
      --timeout <t>    wait at most <t> ms
                       (default 500)
      --a-very-long-option-name <value>  value still two spaces away
  -x                   short only
      --bare

`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteUsage (-want +got):\n%s", diff)
	}
}

func TestVersionText(t *testing.T) {
	t.Parallel()
	// A test binary records no version control stamp.
	want := "knockd 0.8\nA Go rewrite of knock by Judd Vinet: https://github.com/knock-go/knock\nversion: unknown\ncommit: unknown\n"
	if got := VersionText("knockd", "0.8"); got != want {
		t.Errorf("VersionText = %q, want %q", got, want)
	}
}

func TestCommitFromSettings(t *testing.T) {
	t.Parallel()
	const rev = "12f1d1903ab7e0c7c95cbbf9dd1e0f1c7b4b8d2a"
	for _, tt := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, "unknown"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}, "unknown"},
		{[]debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}, rev},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}, rev + " (modified)"},
	} {
		if got := fromSettings(tt.settings); got != tt.want {
			t.Errorf("fromSettings(%v) = %q, want %q", tt.settings, got, tt.want)
		}
	}
}

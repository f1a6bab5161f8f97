package knockcmd

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// knockOpts are knock's options in knock 0.8's getopt_long table order.
var knockOpts = []Opt{
	{Short: 'v', Long: "verbose"},
	{Short: 'u', Long: "udp"},
	{Short: 'd', Long: "delay", HasArg: true},
	{Short: 'h', Long: "help", Final: true},
	{Short: 'V', Long: "version", Final: true},
	{Short: '4', Long: "ipv4"},
	{Short: '6', Long: "ipv6"},
	{Long: "timeout", HasArg: true},
}

func TestGetopt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    string
		want    string
		wantErr string
	}{
		{args: "", want: "--"},
		{args: "host 7000", want: "-- host 7000"},
		{args: "-v host 7000", want: "--verbose -- host 7000"},
		// getopt_long permutes: options may follow the operands.
		{args: "host 7000 -v", want: "--verbose -- host 7000"},
		{args: "host -u 7000 -d 50 7001", want: "--udp --delay=50 -- host 7000 7001"},
		{args: "-uv host 7000", want: "--udp --verbose -- host 7000"},
		{args: "-vd50 host 7000", want: "--verbose --delay=50 -- host 7000"},
		{args: "-vd 50 host 7000", want: "--verbose --delay=50 -- host 7000"},
		{args: "-d -5 host 7000", want: "--delay=-5 -- host 7000"},
		{args: "--delay=50 host", want: "--delay=50 -- host"},
		{args: "--delay 50 host", want: "--delay=50 -- host"},
		{args: "--delay= host", want: "--delay= -- host"},
		{args: "--verb --del 10 --ud --ipv6 --t 9 h p", want: "--verbose --delay=10 --udp --ipv6 --timeout=9 -- h p"},
		{args: "-4 -6 -4 h p", want: "--ipv4 --ipv6 --ipv4 -- h p"},
		{args: "-v -- host 7000 -u", want: "--verbose -- host 7000 -u"},
		{args: "-- -u 7000", want: "-- -u 7000"},
		{args: "- 7000", want: "-- - 7000"},
		// -h and -V act where getopt meets them.
		{args: "-h -V", want: "--help"},
		{args: "-V -h", want: "--version"},
		{args: "-Vx", want: "--version"},
		{args: "-V -x", want: "--version"},
		{args: "--vers", want: "--version"},
		{args: "host 7000 -d 5 --help -x", want: "--help"},

		{args: "-x host 1", wantErr: "invalid option -- 'x'"},
		{args: "-xV", wantErr: "invalid option -- 'x'"},
		{args: "-vx", wantErr: "invalid option -- 'x'"},
		{args: "host -1", wantErr: "invalid option -- '1'"},
		{args: "-t 5 host 1", wantErr: "invalid option -- 't'"},
		{args: "--foo host 1", wantErr: "unrecognized option '--foo'"},
		{args: "--foo=bar", wantErr: "unrecognized option '--foo=bar'"},
		{args: "---v", wantErr: "unrecognized option '---v'"},
		{args: "--ipv host 1", wantErr: "option '--ipv' is ambiguous; possibilities: '--ipv4' '--ipv6'"},
		{args: "--v", wantErr: "option '--v' is ambiguous; possibilities: '--verbose' '--version'"},
		{args: "--ver", wantErr: "option '--ver' is ambiguous; possibilities: '--verbose' '--version'"},
		{args: "-d", wantErr: "option requires an argument -- 'd'"},
		{args: "-vd", wantErr: "option requires an argument -- 'd'"},
		{args: "--delay", wantErr: "option '--delay' requires an argument"},
		{args: "--del", wantErr: "option '--delay' requires an argument"},
		{args: "--verbose=1 host 1", wantErr: "option '--verbose' doesn't allow an argument"},
		{args: "--verb=1", wantErr: "option '--verbose' doesn't allow an argument"},
		{args: "--ipv4=x", wantErr: "option '--ipv4' doesn't allow an argument"},
		{args: "--help=x", wantErr: "option '--help' doesn't allow an argument"},
	}
	for _, tt := range tests {
		got, err := Getopt(knockOpts, strings.Fields(tt.args))
		if tt.wantErr != "" {
			ue, ok := err.(*UsageError)
			if !ok || ue.Msg != tt.wantErr {
				t.Errorf("Getopt(%s) error = %#v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Getopt(%s): %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(strings.Fields(tt.want), got); diff != "" {
			t.Errorf("Getopt(%s) (-want +got):\n%s", tt.args, diff)
		}
	}
}

func TestGetoptEmptyValue(t *testing.T) {
	t.Parallel()
	got, err := Getopt(knockOpts, []string{"-d", "", "host", ""})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"--delay=", "--", "host", ""}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

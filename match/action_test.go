package match

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/knock-go/knock/config"
)

// TestActionLine holds the knockd 0.8 texts that fail2ban filters parse,
// with the knocker named as -l names it.
func TestActionLine(t *testing.T) {
	t.Parallel()
	door := &config.Door{Name: "openSSH"}
	src := netip.MustParseAddr("198.18.0.7")
	for _, tt := range []struct {
		a    Action
		who  string
		want string
	}{
		{Action{Kind: Stage, Door: door, Src: src, Stage: 2}, "198.18.0.7", "198.18.0.7: openSSH: Stage 2"},
		{Action{Kind: Open, Door: door, Src: src}, "198.18.0.7 (host.example)", "198.18.0.7 (host.example): openSSH: OPEN SESAME"},
		{Action{Kind: Timeout, Door: door, Src: src, Stage: 1}, "198.18.0.7", "198.18.0.7: openSSH: sequence timeout (stage 1)"},
		{Action{Kind: Disabled, Door: door, Err: errors.New("otp: no sequence left")}, "", "otp: no sequence left --> disabling the door"},
	} {
		if got := tt.a.Line(tt.who); got != tt.want {
			t.Errorf("Line(%q) = %q, want %q", tt.who, got, tt.want)
		}
		if tt.who == src.String() {
			if got := tt.a.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		}
	}
}

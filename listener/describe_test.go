package listener

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// Describe lists the sockets, one a line, for knockd -D.
func TestDescribe(t *testing.T) {
	t.Parallel()
	s, p := newSource(t, 2, Options{}, func(p []uint16) capture.Spec {
		return capture.Spec{Ports: []capture.Port{
			targeted(wire.TCP, p[0], lo4),
			targeted(wire.UDP, p[1], lo4),
		}}
	})
	want := []string{
		fmt.Sprintf("listening socket: tcp 127.0.0.1:%d for door d", p[0]),
		fmt.Sprintf("listening socket: udp 127.0.0.1:%d for door d", p[1]),
	}
	if diff := cmp.Diff(want, s.Describe()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

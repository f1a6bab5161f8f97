package netlab_test

import (
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/knock-go/knock/internal/netlab"
)

func TestCreateNetnsAndVeth(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	a, err := netlab.CreateNetns("nltest-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := netlab.CreateNetns("nltest-b")
	if err != nil {
		a.Delete()
		t.Fatal(err)
	}
	v, err := netlab.CreateVeth(a, b, netlab.Addressing{A: netip.MustParseAddr("198.18.3.1"), B: netip.MustParseAddr("198.18.3.2"), NoIPv6: true})
	if err != nil {
		a.Delete()
		b.Delete()
		t.Fatal(err)
	}
	// Deleted at the end even if a check fails.
	t.Cleanup(func() {
		for _, n := range []*netlab.Netns{a, b} {
			if err := n.Delete(); err != nil {
				t.Error(err)
			}
			if _, err := os.Stat("/var/run/netns/" + n.Name()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("namespace %s still there after Delete: %v", n, err)
			}
		}
	})
	if out, err := a.TryIP("-o", "link", "show", v.A.Dev); err != nil {
		t.Errorf("%s: %v", v.A.Dev, err)
	} else {
		t.Log(out)
	}
	connectTime(t, a, listenTCP(t, b, v.B.Addr))
	if _, err := a.TryIP("link", "show", "no-such-device"); err == nil {
		t.Errorf("TryIP of a missing device: no error")
	}
	if _, err := netlab.CreateVeth(a, b, netlab.Addressing{A: netip.MustParseAddr("10.0.0.1")}); err == nil {
		t.Errorf("CreateVeth with 10.0.0.1: no error")
	}
}

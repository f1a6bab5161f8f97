package kset

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/knock-go/knock/config"
)

// TestPendingAndRevoke adds two knockers to an nftables set and an ipset,
// lists them, revokes one, and checks that the kernel no longer holds it
// and still holds the other.
func TestPendingAndRevoke(t *testing.T) {
	n, fd := labNetns(t)
	d := door("ssh4", "", time.Hour)
	withIPSet := false
	if _, err := exec.LookPath("ipset"); err == nil {
		n.Run(t, "ipset", "create", "knock4", "hash:ip", "family", "inet", "timeout", "60")
		d.IPSet = "knock4"
		withIPSet = true
	}
	s, err := New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	now := time.Now()
	s.Open(d, a, "198.18.0.2", now)
	s.Open(d, b, "198.18.0.3", now)
	sets := 1
	if withIPSet {
		sets = 2
	}
	if got := s.Pending(); len(got) != 2*sets || got[0].Door != "ssh" || !got[0].Until.Equal(now.Add(time.Hour)) {
		t.Errorf("Pending = %+v: want %d elements of door ssh until %v", got, 2*sets, now.Add(time.Hour))
	}
	if got := s.Revoke(a, "other"); len(got) != 0 {
		t.Errorf("Revoke on another door = %+v, want nothing", got)
	}
	if got := s.Revoke(a, ""); len(got) != sets || got[0].Src != a {
		t.Errorf("Revoke(a) = %+v, want a's %d elements", got, sets)
	}
	if got := s.Revoke(a, ""); len(got) != 0 {
		t.Errorf("a second Revoke(a) = %+v, want nothing", got)
	}
	if got := s.Pending(); len(got) != sets || got[0].Src != b {
		t.Errorf("after Revoke(a), Pending = %+v, want b's elements only", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	es := strings.Join(elements(t, n, "ssh4"), ",")
	if strings.Contains(es, "198.18.0.2 ") || !strings.Contains(es, "198.18.0.3 ") {
		t.Errorf("ssh4 holds %q after the revoke: want 198.18.0.3 only", es)
	}
	if withIPSet {
		if _, ok := ipsetTimeout(t, n, "knock4", "198.18.0.2"); ok {
			t.Error("198.18.0.2 is still in knock4 after the revoke")
		}
		if _, ok := ipsetTimeout(t, n, "knock4", "198.18.0.3"); !ok {
			t.Error("198.18.0.3 is gone from knock4")
		}
		// Removing what the kernel already dropped is no error.
		if err := newAdder(use{ipset: "knock4"}, fd).del(a); err != nil {
			t.Errorf("removing an ipset entry already gone: %v", err)
		}
	}
	if err := newAdder(use{set: d.NFTSet}, fd).del(a); err != nil {
		t.Errorf("removing an nft element already gone: %v", err)
	}
}

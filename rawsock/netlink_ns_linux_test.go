//go:build linux

package rawsock

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// TestRTNLStaysInItsNamespace opens rtnetlink inside a namespace and then
// works it from this goroutine, whose thread is in the test's own
// namespace, as the watcher does: the tables read, a subscription made
// again after a loss and the changes heard all belong to the namespace
// open ran in.
func TestRTNLStaysInItsNamespace(t *testing.T) {
	ns := netlab.NewNetns(t, "nlrt")
	ns.IP(t, "link", "add", "kna", "type", "veth", "peer", "name", "knb")
	var n *rtnl
	if err := ns.Do(func() (err error) { n, err = openRTNL(); return err }); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	inNS := func(when string, st *netState) {
		t.Helper()
		if _, _, ok := st.lookup("kna"); !ok {
			t.Fatalf("%s: the namespace's link kna is not in the table", when)
		}
		if len(st.links) != 3 { // lo, kna, knb
			t.Fatalf("%s: %d links, want the namespace's 3: %v", when, len(st.links), st.links)
		}
	}
	st, err := n.sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inNS("first read", st)
	n.lost(n.current(), nil)
	if st, err = n.sync(ctx); err != nil {
		t.Fatal(err)
	}
	inNS("after a loss", st)

	// The new subscription hears the namespace's changes.
	want := netip.MustParseAddr("198.18.7.1")
	ns.IP(t, "addr", "add", "198.18.7.1/32", "dev", "kna")
	for {
		msgs, err := n.recv(ctx)
		if err != nil {
			t.Fatalf("waiting for the address notice: %v", err)
		}
		for i := range msgs {
			st.apply(&msgs[i])
		}
		if _, ok := st.view().locals[want]; ok {
			break
		}
	}
}

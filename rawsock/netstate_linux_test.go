//go:build linux

package rawsock

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func linkMsg(typ uint16, family uint8, index int32, name string, flags uint32) nlMsg {
	u := &netlink.LinkUpdate{Header: unix.NlMsghdr{Type: typ}}
	u.IfInfomsg = nl.IfInfomsg{IfInfomsg: unix.IfInfomsg{Family: family, Index: index, Flags: flags}}
	if name != "" {
		u.Link = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: int(index), Name: name}}
	}
	return nlMsg{link: u}
}

func addrMsg(add bool, index int, ip string) nlMsg {
	var b net.IP
	if ip != "" {
		a := netip.MustParseAddr(ip)
		b = net.IP(a.AsSlice())
	}
	return nlMsg{addr: &netlink.AddrUpdate{LinkAddress: net.IPNet{IP: b}, LinkIndex: index, NewAddr: add}}
}

type applied struct{ Links, Addrs bool }

func TestNetStateApply(t *testing.T) {
	up := uint32(unix.IFF_UP)
	tests := []struct {
		name  string
		msgs  []nlMsg
		want  []applied // one per message
		links map[int32]linkInfo
		addrs []string // "index addr"
	}{
		{
			name:  "a link comes, goes up, is renamed",
			msgs:  []nlMsg{linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 3, "eth0", 0), linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 3, "eth0", up), linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 3, "wan", up)},
			want:  []applied{{true, false}, {true, false}, {true, false}},
			links: map[int32]linkInfo{3: {"wan", true}},
		},
		{
			name:  "a notice without a name keeps the name",
			msgs:  []nlMsg{linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 3, "eth0", up), linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 3, "", 0)},
			want:  []applied{{true, false}, {true, false}},
			links: map[int32]linkInfo{3: {"eth0", false}},
		},
		{
			name:  "bridge port notices are not about the link",
			msgs:  []nlMsg{linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 4, "veth0", up), linkMsg(unix.RTM_DELLINK, unix.AF_BRIDGE, 4, "veth0", 0), linkMsg(unix.RTM_NEWLINK, unix.AF_BRIDGE, 5, "br0", up)},
			want:  []applied{{true, false}, {false, false}, {false, false}},
			links: map[int32]linkInfo{4: {"veth0", true}},
		},
		{
			name:  "addresses come and go once",
			msgs:  []nlMsg{addrMsg(true, 2, "198.18.0.1"), addrMsg(true, 2, "198.18.0.1"), addrMsg(true, 2, "2001:db8::1"), addrMsg(false, 2, "198.18.0.1"), addrMsg(false, 2, "198.18.0.1")},
			want:  []applied{{false, true}, {false, false}, {false, true}, {false, true}, {false, false}},
			links: map[int32]linkInfo{},
			addrs: []string{"2 2001:db8::1"},
		},
		{
			name:  "the same address on two links",
			msgs:  []nlMsg{addrMsg(true, 2, "198.18.0.1"), addrMsg(true, 3, "198.18.0.1"), addrMsg(false, 2, "198.18.0.1")},
			want:  []applied{{false, true}, {false, true}, {false, true}},
			links: map[int32]linkInfo{},
			addrs: []string{"3 198.18.0.1"},
		},
		{
			name: "a link that goes takes its addresses",
			msgs: []nlMsg{
				linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 7, "tun0", up), addrMsg(true, 7, "198.18.1.1"), addrMsg(true, 8, "198.18.1.2"),
				linkMsg(unix.RTM_DELLINK, unix.AF_UNSPEC, 7, "tun0", 0), linkMsg(unix.RTM_DELLINK, unix.AF_UNSPEC, 9, "", 0),
			},
			want:  []applied{{true, false}, {false, true}, {false, true}, {true, true}, {true, false}},
			links: map[int32]linkInfo{},
			addrs: []string{"8 198.18.1.2"},
		},
		{
			name:  "notices without an address or of another type change nothing",
			msgs:  []nlMsg{addrMsg(true, 2, ""), addrMsg(false, 2, ""), linkMsg(unix.RTM_GETLINK, unix.AF_UNSPEC, 3, "eth0", up), {}},
			want:  []applied{{}, {}, {}, {}},
			links: map[int32]linkInfo{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newNetState()
			var got []applied
			for i := range tt.msgs {
				l, a := st.apply(&tt.msgs[i])
				got = append(got, applied{l, a})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("changes reported (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.links, st.links, cmp.AllowUnexported(linkInfo{})); diff != "" {
				t.Errorf("links (-want +got):\n%s", diff)
			}
			want := map[addrKey]struct{}{}
			for _, s := range tt.addrs {
				idx, a, _ := strings.Cut(s, " ")
				i, err := strconv.Atoi(idx)
				if err != nil {
					t.Fatal(err)
				}
				want[addrKey{int32(i), netip.MustParseAddr(a)}] = struct{}{}
			}
			if diff := cmp.Diff(want, st.addrs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			wantView := map[netip.Addr]struct{}{}
			for k := range want {
				wantView[k.addr] = struct{}{}
			}
			if diff := cmp.Diff(wantView, st.view().locals, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("view (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetStateLookup(t *testing.T) {
	st := newNetState()
	for _, m := range []nlMsg{linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 2, "eth0", unix.IFF_UP), linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, 5, "wg0", 0)} {
		st.apply(&m)
	}
	if i, l, ok := st.lookup("wg0"); !ok || i != 5 || l != (linkInfo{"wg0", false}) {
		t.Errorf("lookup(wg0) = %d, %+v, %v; want 5, {wg0 false}, true", i, l, ok)
	}
	if _, _, ok := st.lookup("eth1"); ok {
		t.Error("lookup(eth1) found a link that never came")
	}
}

// FuzzNetState feeds the state random sequences of link and address
// notices and checks it against a plain model: addresses are kept per
// link, a link that goes takes its addresses, and what apply reports
// changed is what changed.
func FuzzNetState(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 1, 1, 1, 1, 3, 1})
	f.Add([]byte{2, 3, 7, 2, 3, 9, 1, 3, 0, 4, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		st := newNetState()
		model := map[addrKey]struct{}{}
		links := map[int32]bool{}
		for ; len(b) >= 3; b = b[3:] {
			op, index, v := b[0]%6, int32(b[1]%4), b[2]
			var m nlMsg
			var key addrKey
			switch op {
			case 0, 1: // a link comes or changes
				m = linkMsg(unix.RTM_NEWLINK, unix.AF_UNSPEC, index, []string{"", "a", "b"}[v%3], uint32(v&1))
			case 2: // a link goes
				m = linkMsg(unix.RTM_DELLINK, unix.AF_UNSPEC, index, "", 0)
			case 3: // a bridge notice
				m = linkMsg(unix.RTM_DELLINK, unix.AF_BRIDGE, index, "", 0)
			case 4, 5: // an address comes or goes, v4 or v6, or none
				ip := []string{"", "198.18.0.1", "198.18.0.2", "2001:db8::1"}[v%4]
				m = addrMsg(op == 4, int(index), ip)
				if ip != "" {
					key = addrKey{index, netip.MustParseAddr(ip)}
				}
			}
			before := len(st.addrs)
			l, a := st.apply(&m)
			wantLinks, wantAddrs := false, false
			switch op {
			case 0, 1:
				links[index], wantLinks = true, true
			case 2:
				delete(links, index)
				wantLinks = true
				for k := range model {
					if k.index == index {
						delete(model, k)
						wantAddrs = true
					}
				}
			case 4, 5:
				if key.addr.IsValid() {
					_, had := model[key]
					if op == 4 {
						model[key] = struct{}{}
					} else {
						delete(model, key)
					}
					wantAddrs = had != (op == 4)
				}
			}
			if l != wantLinks || a != wantAddrs {
				t.Fatalf("op %d on %d: apply reported links %v addrs %v, want %v %v", op, index, l, a, wantLinks, wantAddrs)
			}
			if a == (before == len(st.addrs)) {
				t.Fatalf("op %d on %d: apply reported addrs %v but the count went from %d to %d", op, index, a, before, len(st.addrs))
			}
			if len(st.links) != len(links) {
				t.Fatalf("%d links, model has %d", len(st.links), len(links))
			}
			if len(st.addrs) != len(model) {
				t.Fatalf("%d addresses, model has %d", len(st.addrs), len(model))
			}
			for k := range model {
				if _, ok := st.addrs[k]; !ok {
					t.Fatalf("address %v on %d missing", k.addr, k.index)
				}
			}
		}
	})
}

// TestRTNLSubscribeAgain reads the tables of the test's own namespace,
// as any user may, and again after the subscriptions were lost: the
// loopback link and its address are in both.
func TestRTNLSubscribeAgain(t *testing.T) {
	n, err := openRTNL()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	check := func(when string) {
		t.Helper()
		st, err := n.sync(ctx)
		if err != nil {
			t.Fatalf("%s: sync: %v", when, err)
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			t.Skipf("no loopback interface to look for: %v", err)
		}
		index, l, ok := st.lookup("lo")
		if !ok || int(index) != lo.Index || !l.up {
			t.Errorf("%s: lookup(lo) = %d, %+v, %v; want %d, up", when, index, l, ok, lo.Index)
		}
		if _, ok := st.view().locals[netip.MustParseAddr("127.0.0.1")]; !ok {
			t.Errorf("%s: 127.0.0.1 is not among the local addresses", when)
		}
	}
	check("first read")
	if err := n.lost(n.current(), nil); err != errOverrun {
		t.Fatalf("lost = %v, want errOverrun", err)
	}
	if _, err := n.recv(ctx); err != errOverrun {
		t.Fatalf("recv after a loss = %v, want errOverrun", err)
	}
	check("after a loss")
	// The library reports a failed read through ErrorCallback.
	n.current().errc <- errors.New("Receive failed: no buffer space available")
	if _, err := n.recv(ctx); !errors.Is(err, errOverrun) {
		t.Fatalf("recv after a reported error = %v, want errOverrun", err)
	}
	if n.current() != nil {
		t.Fatal("the failed subscription is still in use")
	}
	check("after a reported error")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.sync(ctx); err == nil {
		t.Fatal("sync after Close succeeded")
	}
}

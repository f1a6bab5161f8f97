//go:build linux

package rawsock

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nlMsg is one change rtnetlink told of: exactly one of link and addr is
// set.
type nlMsg struct {
	link *netlink.LinkUpdate
	addr *netlink.AddrUpdate
}

// netState is the host's links and addresses as rtnetlink told them.
type netState struct {
	links map[int32]linkInfo
	addrs map[addrKey]struct{}
}

type linkInfo struct {
	name string
	up   bool
}

type addrKey struct {
	index int32
	addr  netip.Addr
}

func newNetState() *netState {
	return &netState{links: map[int32]linkInfo{}, addrs: map[addrKey]struct{}{}}
}

// lookup returns the link named name.
func (st *netState) lookup(name string) (index int32, l linkInfo, ok bool) {
	for i, l := range st.links {
		if l.name == name {
			return i, l, true
		}
	}
	return 0, linkInfo{}, false
}

// view returns the addresses as the readers use them.
func (st *netState) view() *netView {
	v := &netView{locals: make(map[netip.Addr]struct{}, len(st.addrs))}
	for k := range st.addrs {
		v.locals[k.addr] = struct{}{}
	}
	return v
}

// apply folds one change into st and reports what it changed.
func (st *netState) apply(m *nlMsg) (linksChanged, addrsChanged bool) {
	switch {
	case m.link != nil:
		return st.applyLink(m.link)
	case m.addr != nil:
		return false, st.applyAddr(m.addr)
	}
	return false, false
}

func (st *netState) applyLink(u *netlink.LinkUpdate) (linksChanged, addrsChanged bool) {
	if u.Family == unix.AF_BRIDGE {
		// Bridge port notices, not about the link itself: a port
		// leaving a bridge comes as an AF_BRIDGE DELLINK.
		return false, false
	}
	switch u.Header.Type {
	case unix.RTM_DELLINK:
		delete(st.links, u.Index)
		for k := range st.addrs {
			if k.index == u.Index {
				delete(st.addrs, k)
				addrsChanged = true
			}
		}
		return true, addrsChanged
	case unix.RTM_NEWLINK:
		var name string
		if u.Link != nil {
			if a := u.Link.Attrs(); a != nil {
				name = a.Name
			}
		}
		st.setLink(u.Index, name, u.Flags)
		return true, false
	}
	return false, false
}

// setLink records the link index as named name (kept as it was when
// empty: the notice did not carry one) with the interface flags.
func (st *netState) setLink(index int32, name string, flags uint32) {
	l := st.links[index]
	if name != "" {
		l.name = name
	}
	l.up = flags&unix.IFF_UP != 0
	st.links[index] = l
}

// applyAddr folds an address change into st and reports whether the set
// of addresses changed. The library gives the local end of a
// point-to-point link (IFA_LOCAL), not its peer.
func (st *netState) applyAddr(u *netlink.AddrUpdate) bool {
	addr, ok := netip.AddrFromSlice(u.LinkAddress.IP)
	if !ok {
		return false
	}
	k := addrKey{int32(u.LinkIndex), addr}
	_, had := st.addrs[k]
	if u.NewAddr {
		st.addrs[k] = struct{}{}
	} else {
		delete(st.addrs, k)
	}
	return had != u.NewAddr
}

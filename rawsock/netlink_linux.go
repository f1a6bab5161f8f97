//go:build linux

package rawsock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"
)

// rtnl is a NETLINK_ROUTE socket that hears of every link and address
// change, and can ask for the full tables.
type rtnl struct {
	c   *socket.Conn
	pid uint32 // the port ID the kernel gave the socket
	seq uint32
	buf []byte
}

func openRTNL() (*rtnl, error) {
	c, err := socket.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE, "rtnetlink", nil)
	if err != nil {
		return nil, fmt.Errorf("rawsock: opening rtnetlink socket: %w", err)
	}
	err = c.Bind(&unix.SockaddrNetlink{
		Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR,
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("rawsock: binding rtnetlink socket: %w", err)
	}
	// A burst of changes (a VPN coming up, a container host) must not
	// overflow the queue; if it does anyway, the tables are read again.
	_ = c.SetReadBuffer(1 << 20)
	sa, err := c.Getsockname()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("rawsock: rtnetlink socket name: %w", err)
	}
	sn, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("rawsock: rtnetlink socket name is a %T", sa)
	}
	return &rtnl{c: c, pid: sn.Pid, buf: make([]byte, 1<<16)}, nil
}

func (n *rtnl) Close() error { return n.c.Close() }

// dump asks for the whole table of typ (RTM_GETLINK or RTM_GETADDR) and
// returns the request's sequence number.
func (n *rtnl) dump(ctx context.Context, typ uint16) (uint32, error) {
	n.seq++
	bodyLen := unix.SizeofIfInfomsg
	if typ == unix.RTM_GETADDR {
		bodyLen = unix.SizeofIfAddrmsg
	}
	b := make([]byte, unix.SizeofNlMsghdr+bodyLen) // family AF_UNSPEC: all
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(b[8:12], n.seq)
	err := n.c.Sendto(ctx, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	if err != nil {
		return 0, fmt.Errorf("rtnetlink dump request: %w", err)
	}
	return n.seq, nil
}

// errOverrun means notifications were lost: the tables must be read
// again.
var errOverrun = errors.New("rawsock: rtnetlink queue overrun")

// recv returns the next batch of messages. They are valid until the next
// call.
func (n *rtnl) recv(ctx context.Context) ([]nlMsg, error) {
	nr, _, err := n.c.Recvfrom(ctx, n.buf, 0)
	if errors.Is(err, unix.ENOBUFS) {
		return nil, errOverrun
	}
	if err != nil {
		return nil, err
	}
	msgs, ok := parseNetlink(n.buf[:nr])
	if !ok {
		// A batch we cannot parse is as good as lost.
		return nil, errOverrun
	}
	return msgs, nil
}

// nlMsg is one netlink message.
type nlMsg struct {
	typ, flags uint16
	seq, pid   uint32
	data       []byte // the payload after the header
}

// parseNetlink splits a datagram into messages.
func parseNetlink(b []byte) ([]nlMsg, bool) {
	var msgs []nlMsg
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return nil, false
		}
		msgs = append(msgs, nlMsg{
			typ:   binary.NativeEndian.Uint16(b[4:6]),
			flags: binary.NativeEndian.Uint16(b[6:8]),
			seq:   binary.NativeEndian.Uint32(b[8:12]),
			pid:   binary.NativeEndian.Uint32(b[12:16]),
			data:  b[unix.SizeofNlMsghdr:l],
		})
		al := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if al >= len(b) {
			break
		}
		b = b[al:]
	}
	return msgs, true
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

// apply folds one message into st and reports what it changed.
func (st *netState) apply(m *nlMsg) (linksChanged, addrsChanged bool) {
	switch m.typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(m.data) < unix.SizeofIfInfomsg {
			return false, false
		}
		family := m.data[0]
		index := int32(binary.NativeEndian.Uint32(m.data[4:8]))
		flags := binary.NativeEndian.Uint32(m.data[8:12])
		if family == unix.AF_BRIDGE {
			// Bridge port notices, not about the link itself: a
			// port leaving a bridge comes as an AF_BRIDGE DELLINK.
			return false, false
		}
		if m.typ == unix.RTM_DELLINK {
			delete(st.links, index)
			for k := range st.addrs {
				if k.index == index {
					delete(st.addrs, k)
					addrsChanged = true
				}
			}
			return true, addrsChanged
		}
		l := st.links[index]
		if name, ok := attr(m.data[unix.SizeofIfInfomsg:], unix.IFLA_IFNAME); ok {
			l.name = cString(name)
		}
		l.up = flags&unix.IFF_UP != 0
		st.links[index] = l
		return true, false

	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(m.data) < unix.SizeofIfAddrmsg {
			return false, false
		}
		index := int32(binary.NativeEndian.Uint32(m.data[4:8]))
		attrs := m.data[unix.SizeofIfAddrmsg:]
		// IFA_LOCAL is the local end of a point-to-point link, where
		// IFA_ADDRESS is the peer; elsewhere only IFA_ADDRESS may be
		// present.
		a, ok := attr(attrs, unix.IFA_LOCAL)
		if !ok {
			a, ok = attr(attrs, unix.IFA_ADDRESS)
		}
		if !ok {
			return false, false
		}
		addr, ok := netip.AddrFromSlice(a)
		if !ok {
			return false, false
		}
		k := addrKey{index, addr}
		if m.typ == unix.RTM_NEWADDR {
			if _, had := st.addrs[k]; had {
				return false, false
			}
			st.addrs[k] = struct{}{}
			return false, true
		}
		if _, had := st.addrs[k]; !had {
			return false, false
		}
		delete(st.addrs, k)
		return false, true
	}
	return false, false
}

// attr returns the payload of the first route attribute of type typ in b.
func attr(b []byte, typ uint16) ([]byte, bool) {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) &^ unix.NLA_F_NESTED
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, false
		}
		if t == typ {
			return b[unix.SizeofRtAttr:l], true
		}
		al := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if al > len(b) {
			return nil, false
		}
		b = b[al:]
	}
	return nil, false
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// sync reads the link and address tables into a fresh netState.
// Notifications that arrive in between are applied in order, so the
// result is current when sync returns.
func (n *rtnl) sync(ctx context.Context) (*netState, error) {
	for {
		st, err := n.trySync(ctx)
		if errors.Is(err, errOverrun) {
			continue
		}
		return st, err
	}
}

func (n *rtnl) trySync(ctx context.Context) (*netState, error) {
	st := newNetState()
	for _, typ := range []uint16{unix.RTM_GETLINK, unix.RTM_GETADDR} {
		seq, err := n.dump(ctx, typ)
		if err != nil {
			return nil, err
		}
		done, interrupted := false, false
		for !done {
			msgs, err := n.recv(ctx)
			if err != nil {
				return nil, err
			}
			for i := range msgs {
				m := &msgs[i]
				// Notifications caused by another program's request carry
				// its sequence number; the port ID tells ours apart.
				ours := m.seq == seq && m.pid == n.pid
				if ours && m.flags&unix.NLM_F_DUMP_INTR != 0 {
					interrupted = true
				}
				switch {
				case ours && m.typ == unix.NLMSG_DONE:
					done = true
				case ours && m.typ == unix.NLMSG_ERROR:
					if len(m.data) >= 4 {
						if e := -int32(binary.NativeEndian.Uint32(m.data[:4])); e != 0 {
							return nil, fmt.Errorf("rtnetlink dump: %w", os.NewSyscallError("netlink", unix.Errno(e)))
						}
					}
				default:
					st.apply(m)
				}
			}
		}
		if interrupted {
			// The table changed under the dump; read it again.
			return nil, errOverrun
		}
	}
	return st, nil
}

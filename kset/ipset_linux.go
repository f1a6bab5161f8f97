package kset

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ipsetHandle returns a netlink handle in this namespace, or in netnsFd's.
func ipsetHandle(netnsFd int) (*netlink.Handle, error) {
	if netnsFd != 0 {
		return netlink.NewHandleAt(netns.NsHandle(netnsFd), unix.NETLINK_NETFILTER)
	}
	return netlink.NewHandle(unix.NETLINK_NETFILTER)
}

func (k netKernel) IPSet(name string) (SetInfo, error) {
	h, err := ipsetHandle(k.netnsFd)
	if err != nil {
		return SetInfo{}, fmt.Errorf("opening netlink: %w", err)
	}
	defer h.Close()
	res, err := h.IpsetList(name)
	if perr := permission(err); perr != nil {
		return SetInfo{}, perr
	}
	if errors.Is(err, unix.ENOENT) {
		return SetInfo{Missing: true}, nil
	}
	if err != nil {
		return SetInfo{}, err
	}
	info := SetInfo{Type: res.TypeName, Family: fmt.Sprintf("family %d", res.Family), Timeout: res.Timeout != nil}
	switch res.Family {
	case unix.AF_INET:
		info.Family = "inet"
	case unix.AF_INET6:
		info.Family = "inet6"
	}
	return info, nil
}

// ipsetAdder adds to one ipset.
type ipsetAdder struct {
	name    string
	netnsFd int
	h       *netlink.Handle
	sock    *nl.SocketHandle // for the requests of many entries
}

func (a *ipsetAdder) handle() (*netlink.Handle, error) {
	if a.h == nil {
		h, err := ipsetHandle(a.netnsFd)
		if err != nil {
			return nil, fmt.Errorf("opening netlink: %w", err)
		}
		a.h = h
	}
	return a.h, nil
}

// left lists the set's entries with the seconds they have left.
func (a *ipsetAdder) left() (map[netip.Addr]time.Duration, error) {
	h, err := a.handle()
	if err != nil {
		return nil, err
	}
	res, err := h.IpsetList(a.name)
	if perr := permission(err); perr != nil {
		return nil, perr
	}
	if err != nil {
		return nil, err
	}
	left := make(map[netip.Addr]time.Duration, len(res.Entries))
	for _, e := range res.Entries {
		addr, ok := netip.AddrFromSlice(e.IP)
		if !ok || e.Timeout == nil {
			continue
		}
		if *e.Timeout == 0 {
			left[addr.Unmap()] = forever // put there with timeout 0
		} else {
			left[addr.Unmap()] = time.Duration(*e.Timeout) * time.Second
		}
	}
	return left, nil
}

// put adds the elements in requests of up to ipsetPerMsg entries each:
// the kernel takes several entries in one message when they are nested
// in IPSET_ATTR_ADT (as ipset restore sends them), which
// vishvananda/netlink's IpsetAdd does not do, so the request is built
// from the library's netlink pieces. The elements known to be there get
// their new timeout (no NLM_F_EXCL, as ipset -exist); the others are
// added with NLM_F_EXCL, so that one another program put there meanwhile
// is refused (errPresent) rather than given a shorter timeout. If a
// request fails, the kernel has stopped at the entry it could not add;
// that request's entries are then added one by one, so that each
// failure is named and the others still land.
func (a *ipsetAdder) put(elems []element) error {
	var present, fresh []element
	for _, e := range elems {
		if e.present {
			present = append(present, e)
		} else {
			fresh = append(fresh, e)
		}
	}
	errs := elemErrors{}
	for _, part := range []struct {
		elems []element
		excl  bool
	}{{present, false}, {fresh, true}} {
		for es := part.elems; len(es) > 0; {
			n := min(len(es), ipsetPerMsg)
			if err := a.putMsg(es[:n], part.excl); err != nil {
				if perr := permission(err); perr != nil {
					return perr
				}
				if err := a.putEach(es[:n], part.excl, errs); err != nil {
					return err
				}
			}
			es = es[n:]
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// ipsetPerMsg keeps a request's IPSET_ATTR_ADT under the 64 KiB that a
// netlink attribute's length can say (an IPv6 entry takes 36 bytes).
const ipsetPerMsg = 1024

func (a *ipsetAdder) putMsg(elems []element, excl bool) error {
	if a.sock == nil {
		ns := netns.None()
		if a.netnsFd != 0 {
			ns = netns.NsHandle(a.netnsFd)
		}
		sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		a.sock = &nl.SocketHandle{Socket: sock}
	}
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	if excl {
		flags |= unix.NLM_F_EXCL
	}
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{
			Len:   unix.SizeofNlMsghdr,
			Type:  uint16(nl.IPSET_CMD_ADD | unix.NFNL_SUBSYS_IPSET<<8),
			Flags: flags,
		},
		Sockets: map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: a.sock},
	}
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_NETLINK, Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(a.name)))
	adt := nl.NewRtAttr(nl.IPSET_ATTR_ADT|unix.NLA_F_NESTED, nil)
	for _, e := range elems {
		data := nl.NewRtAttr(nl.IPSET_ATTR_DATA|unix.NLA_F_NESTED, nil)
		data.AddChild(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_TIMEOUT | nl.NLA_F_NET_BYTEORDER, Value: uint32(e.timeout / time.Second)})
		typ := nl.IPSET_ATTR_IPADDR_IPV4
		if e.addr.Is6() {
			typ = nl.IPSET_ATTR_IPADDR_IPV6
		}
		ip := nl.NewRtAttr(typ|int(nl.NLA_F_NET_BYTEORDER), e.addr.AsSlice())
		data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_IP|unix.NLA_F_NESTED, ip.Serialize()))
		adt.AddChild(data)
	}
	req.AddData(adt)
	_, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	return err
}

// putEach adds the elements one a request, noting each failure in errs.
func (a *ipsetAdder) putEach(elems []element, excl bool, errs elemErrors) error {
	h, err := a.handle()
	if err != nil {
		return err
	}
	for _, e := range elems {
		secs := uint32(e.timeout / time.Second)
		err := h.IpsetAdd(a.name, &netlink.IPSetEntry{IP: e.addr.AsSlice(), Timeout: &secs, Replace: !excl})
		if err != nil {
			if perr := permission(err); perr != nil {
				return perr
			}
			errs[e.addr] = ipsetError(err)
		}
	}
	return nil
}

// ipsetError names the errors of hash:ip the library leaves as numbers.
func ipsetError(err error) error {
	var ie nl.IPSetError
	var en syscall.Errno
	if (errors.As(err, &ie) && int(ie) == nl.IPSET_ERR_EXIST) || (errors.As(err, &en) && int(en) == nl.IPSET_ERR_EXIST) {
		return errPresent
	}
	if (errors.As(err, &ie) && int(ie) == nl.IPSET_ERR_TYPE_SPECIFIC) || (errors.As(err, &en) && int(en) == nl.IPSET_ERR_TYPE_SPECIFIC) {
		return errors.New("the ipset is full: create it again with a larger maxelem")
	}
	return err
}

// del removes addr from the ipset; an entry already gone (expired) is no
// error.
func (a *ipsetAdder) del(addr netip.Addr) error {
	if a.h == nil {
		h, err := ipsetHandle(a.netnsFd)
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		a.h = h
	}
	err := a.h.IpsetDel(a.name, &netlink.IPSetEntry{IP: addr.AsSlice()})
	if perr := permission(err); perr != nil {
		return perr
	}
	if err != nil && (errors.Is(err, unix.ENOENT) || errors.Is(err, nl.IPSetError(nl.IPSET_ERR_EXIST))) {
		return nil
	}
	return err
}

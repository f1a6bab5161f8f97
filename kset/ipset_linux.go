package kset

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
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

// ipsetAdder adds to one ipset. An entry already there gets the new
// timeout (no NLM_F_EXCL, as ipset -exist).
type ipsetAdder struct {
	name    string
	netnsFd int
	h       *netlink.Handle
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

func (a *ipsetAdder) put(elems []element) error {
	h, err := a.handle()
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range elems {
		secs := uint32(e.timeout / time.Second)
		err := h.IpsetAdd(a.name, &netlink.IPSetEntry{IP: e.addr.AsSlice(), Timeout: &secs, Replace: true})
		if err != nil {
			if perr := permission(err); perr != nil {
				return perr
			}
			errs = append(errs, fmt.Errorf("%s: %w", e.addr, err))
		}
	}
	return errors.Join(errs...)
}

package kset

import (
	"errors"
	"fmt"
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

// ipsetAdder adds to one ipset. The kernel takes one entry a message; an
// entry already there gets the new timeout (no NLM_F_EXCL, as ipset
// -exist).
type ipsetAdder struct {
	name    string
	netnsFd int
	h       *netlink.Handle
}

func (a *ipsetAdder) add(batch []addition) error {
	if a.h == nil {
		h, err := ipsetHandle(a.netnsFd)
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		a.h = h
	}
	var errs []error
	for _, x := range batch {
		secs := uint32(max(x.timeout, time.Second) / time.Second)
		err := a.h.IpsetAdd(a.name, &netlink.IPSetEntry{IP: x.addr.AsSlice(), Timeout: &secs, Replace: true})
		if err != nil {
			if perr := permission(err); perr != nil {
				return perr
			}
			errs = append(errs, fmt.Errorf("%s: %w", x.addr, err))
		}
	}
	return errors.Join(errs...)
}

package kset

import (
	"errors"
	"fmt"
	"net/netip"
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

// checkIPSet makes sure that the ipset exists, is hash:ip of its family
// and has timeouts.
func checkIPSet(u use, netnsFd int) error {
	family, afFamily := "inet", uint8(unix.AF_INET)
	if u.v6 {
		family, afFamily = "inet6", unix.AF_INET6
	}
	create := fmt.Sprintf("ipset create %s hash:ip family %s timeout 60", u.ipset, family)
	fail := func(fix, format string, args ...any) error {
		return &SetError{Door: u.door, Key: u.key, Value: u.value(), Err: fmt.Errorf(format, args...), Fix: fix}
	}
	h, err := ipsetHandle(netnsFd)
	if err != nil {
		return fmt.Errorf("kset: opening netlink: %w", err)
	}
	defer h.Close()
	res, err := h.IpsetList(u.ipset)
	if perr := permission(err); perr != nil {
		return perr
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fail(create, "there is no ipset %s", u.ipset)
		}
		return fail(create, "there is no usable ipset %s (%v)", u.ipset, err)
	}
	recreate := fmt.Sprintf("ipset destroy %s && %s", u.ipset, create)
	if res.TypeName != "hash:ip" {
		return fail(recreate, "the ipset is %s, not hash:ip", res.TypeName)
	}
	if res.Family != afFamily {
		return fail(recreate, "the ipset is not of family %s", family)
	}
	if res.Timeout == nil {
		return fail(recreate, "the ipset has no timeout, so its entries would never expire")
	}
	return nil
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

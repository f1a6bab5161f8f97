package kset

import (
	"errors"
	"fmt"

	"github.com/knock-go/knock/config"
)

// Kernel answers the questions that New and Update ask about the sets
// the doors name. Options.Kernel nil means the kernel's netfilter, over
// netlink; tests give a fake, so that every message of the checks can be
// tested without privileges.
type Kernel interface {
	// NFTSet describes an nftables set. An error wrapping ErrNoNetAdmin
	// means the process may not look.
	NFTSet(s config.NFTSet) (SetInfo, error)
	// IPSet describes an ipset, likewise.
	IPSet(name string) (SetInfo, error)
}

// SetInfo is what the kernel says of a set.
type SetInfo struct {
	NoTable bool   // nftables: there is no such table
	Missing bool   // there is no such set (in the table)
	Type    string // nftables: the key type (ipv4_addr); ipset: the set type (hash:ip)
	Family  string // ipset: inet or inet6
	Timeout bool   // the set's elements may have timeouts
}

// check makes sure that the set u names exists, holds the addresses of
// its family and has timeouts.
func check(u use, k Kernel) error {
	fail := func(fix string, format string, args ...any) error {
		return &SetError{Door: u.door, Key: u.key, Value: u.value(), Err: fmt.Errorf(format, args...), Fix: fix}
	}
	if u.ipset != "" {
		family := "inet"
		if u.v6 {
			family = "inet6"
		}
		create := fmt.Sprintf("ipset create %s hash:ip family %s timeout 60", u.ipset, family)
		info, err := k.IPSet(u.ipset)
		switch {
		case errors.Is(err, ErrNoNetAdmin):
			return err
		case err != nil:
			return fail(create, "there is no usable ipset %s (%v)", u.ipset, err)
		case info.Missing:
			return fail(create, "there is no ipset %s", u.ipset)
		}
		recreate := fmt.Sprintf("ipset destroy %s && %s", u.ipset, create)
		switch {
		case info.Type != "hash:ip":
			return fail(recreate, "the ipset is %s, not hash:ip", info.Type)
		case info.Family != family:
			return fail(recreate, "the ipset is not of family %s", family)
		case !info.Timeout:
			return fail(recreate, "the ipset has no timeout, so its entries would never expire")
		}
		return nil
	}
	typ := "ipv4_addr"
	if u.v6 {
		typ = "ipv6_addr"
	}
	set := u.set
	addSet := fmt.Sprintf("nft add set %s '{ type %s; flags timeout; }'", set, typ)
	info, err := k.NFTSet(set)
	switch {
	case errors.Is(err, ErrNoNetAdmin):
		return err
	case err != nil:
		return fail("", "listing set %s: %v", set, err)
	case info.NoTable:
		return fail(fmt.Sprintf("nft add table %s %s && %s", set.Family, set.Table, addSet), "there is no table %s %s", set.Family, set.Table)
	case info.Missing:
		return fail(addSet, "table %s %s has no set %s", set.Family, set.Table, set.Name)
	}
	recreate := fmt.Sprintf("nft delete set %s && %s", set, addSet)
	switch {
	case info.Type != typ:
		return fail(recreate, "the set holds %s, not %s", info.Type, typ)
	case !info.Timeout:
		return fail(recreate, "the set has no timeouts (flags timeout), so its elements would never expire")
	}
	return nil
}

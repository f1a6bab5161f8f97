package kset

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/knock-go/knock/config"
)

// families maps NFT_Set's FAMILY to the library's.
var families = map[string]nftables.TableFamily{
	"inet": nftables.TableFamilyINet,
	"ip":   nftables.TableFamilyIPv4,
	"ip6":  nftables.TableFamilyIPv6,
}

func conn(netnsFd int, lasting bool) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	if lasting {
		opts = append(opts, nftables.AsLasting())
	}
	return nftables.New(opts...)
}

// permission turns a refusal by the kernel into ErrNoNetAdmin.
func permission(err error) error {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("kset: %w (%v)", ErrNoNetAdmin, err)
	}
	return nil
}

// check makes sure that the set exists, holds the addresses of its
// family and has timeouts.
func check(u use, netnsFd int) error {
	if u.ipset != "" {
		return checkIPSet(u, netnsFd)
	}
	c, err := conn(netnsFd, false)
	if err != nil {
		return fmt.Errorf("kset: opening netlink: %w", err)
	}
	typ := "ipv4_addr"
	if u.v6 {
		typ = "ipv6_addr"
	}
	set := u.set
	addSet := fmt.Sprintf("nft add set %s '{ type %s; flags timeout; }'", set, typ)
	fail := func(fix string, format string, args ...any) error {
		return &SetError{Door: u.door, Key: u.key, Value: u.value(), Err: fmt.Errorf(format, args...), Fix: fix}
	}
	t, err := c.ListTableOfFamily(set.Table, families[set.Family])
	if perr := permission(err); perr != nil {
		return perr
	}
	if err != nil || t == nil {
		if err == nil || errors.Is(err, unix.ENOENT) {
			return fail(fmt.Sprintf("nft add table %s %s && %s", set.Family, set.Table, addSet), "there is no table %s %s", set.Family, set.Table)
		}
		return fail("", "listing table %s %s: %v", set.Family, set.Table, err)
	}
	s, err := c.GetSetByName(t, set.Name)
	if perr := permission(err); perr != nil {
		return perr
	}
	if err != nil || s == nil {
		if err == nil || errors.Is(err, unix.ENOENT) {
			return fail(addSet, "table %s %s has no set %s", set.Family, set.Table, set.Name)
		}
		return fail("", "listing set: %v", err)
	}
	recreate := fmt.Sprintf("nft delete set %s && %s", set, addSet)
	if s.KeyType.Name != typ {
		return fail(recreate, "the set holds %s, not %s", s.KeyType.Name, typ)
	}
	if !s.HasTimeout {
		return fail(recreate, "the set has no timeouts (flags timeout), so its elements would never expire")
	}
	return nil
}

func newAdder(u use, netnsFd int) adder {
	if u.ipset != "" {
		return &ipsetAdder{name: u.ipset, netnsFd: netnsFd}
	}
	return &nftAdder{set: u.set, netnsFd: netnsFd}
}

// nftAdder adds to one nftables set over a netlink socket of its own.
type nftAdder struct {
	set     config.NFTSet
	netnsFd int
	c       *nftables.Conn
}

// add adds the batch in one transaction. Each element is added, deleted
// and added again with its full timeout, so that a knocker already in the
// set gets its expiry pushed out whatever the kernel does when an existing
// element is added, and is never in the set twice nor missing from it for
// an instant.
func (a *nftAdder) add(batch []addition) error {
	if a.c == nil {
		c, err := conn(a.netnsFd, true)
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		a.c = c
	}
	typ := nftables.TypeIPAddr
	if len(batch) > 0 && batch[0].addr.Is6() {
		typ = nftables.TypeIP6Addr
	}
	s := &nftables.Set{
		Table:      &nftables.Table{Name: a.set.Table, Family: families[a.set.Family]},
		Name:       a.set.Name,
		KeyType:    typ,
		HasTimeout: true,
	}
	// One element per address, with the longest timeout asked for: a
	// second delete of the same key would fail the whole transaction.
	longest := make(map[netip.Addr]time.Duration, len(batch))
	var order []netip.Addr
	for _, x := range batch {
		if t, seen := longest[x.addr]; seen {
			longest[x.addr] = max(t, x.timeout)
			continue
		}
		longest[x.addr] = x.timeout
		order = append(order, x.addr)
	}
	elems := make([]nftables.SetElement, 0, len(order))
	keys := make([]nftables.SetElement, 0, len(order))
	for _, addr := range order {
		// A 0 timeout would mean the set's default, or never.
		elems = append(elems, nftables.SetElement{Key: addr.AsSlice(), Timeout: max(longest[addr], time.Second)})
		keys = append(keys, nftables.SetElement{Key: addr.AsSlice()})
	}
	if err := a.c.SetAddElements(s, elems); err != nil {
		return err
	}
	if err := a.c.SetDeleteElements(s, keys); err != nil {
		return err
	}
	if err := a.c.SetAddElements(s, elems); err != nil {
		return err
	}
	if err := a.c.Flush(); err != nil {
		if perr := permission(err); perr != nil {
			return perr
		}
		return err
	}
	return nil
}

// del removes addr from the set; an element already gone (expired) is no
// error.
func (a *nftAdder) del(addr netip.Addr) error {
	if a.c == nil {
		c, err := conn(a.netnsFd, true)
		if err != nil {
			return fmt.Errorf("opening netlink: %w", err)
		}
		a.c = c
	}
	typ := nftables.TypeIPAddr
	if addr.Is6() {
		typ = nftables.TypeIP6Addr
	}
	s := &nftables.Set{
		Table:      &nftables.Table{Name: a.set.Table, Family: families[a.set.Family]},
		Name:       a.set.Name,
		KeyType:    typ,
		HasTimeout: true,
	}
	if err := a.c.SetDeleteElements(s, []nftables.SetElement{{Key: addr.AsSlice()}}); err != nil {
		return err
	}
	if err := a.c.Flush(); err != nil {
		if perr := permission(err); perr != nil {
			return perr
		}
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return nil
}

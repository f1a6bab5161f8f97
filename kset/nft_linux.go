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

// netKernel is the Kernel of a network namespace: this process's, or
// netnsFd's when not 0.
type netKernel struct{ netnsFd int }

func (k netKernel) NFTSet(set config.NFTSet) (SetInfo, error) {
	c, err := conn(k.netnsFd, false)
	if err != nil {
		return SetInfo{}, fmt.Errorf("opening netlink: %w", err)
	}
	t, err := c.ListTableOfFamily(set.Table, families[set.Family])
	if perr := permission(err); perr != nil {
		return SetInfo{}, perr
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return SetInfo{}, fmt.Errorf("listing table %s %s: %w", set.Family, set.Table, err)
	}
	if err != nil || t == nil {
		return SetInfo{NoTable: true, Missing: true}, nil
	}
	s, err := c.GetSetByName(t, set.Name)
	if perr := permission(err); perr != nil {
		return SetInfo{}, perr
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return SetInfo{}, err
	}
	if err != nil || s == nil {
		return SetInfo{Missing: true}, nil
	}
	return SetInfo{Type: s.KeyType.Name, Timeout: s.HasTimeout}, nil
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

func (a *nftAdder) conn() (*nftables.Conn, error) {
	if a.c == nil {
		c, err := conn(a.netnsFd, true)
		if err != nil {
			return nil, fmt.Errorf("opening netlink: %w", err)
		}
		a.c = c
	}
	return a.c, nil
}

func (a *nftAdder) nftSet(v6 bool) *nftables.Set {
	typ := nftables.TypeIPAddr
	if v6 {
		typ = nftables.TypeIP6Addr
	}
	return &nftables.Set{
		Table:      &nftables.Table{Name: a.set.Table, Family: families[a.set.Family]},
		Name:       a.set.Name,
		KeyType:    typ,
		HasTimeout: true,
	}
}

// left dumps the set's elements with their expiry.
func (a *nftAdder) left() (map[netip.Addr]time.Duration, error) {
	c, err := a.conn()
	if err != nil {
		return nil, err
	}
	// The key type only matters to the library for elements it sends.
	es, err := c.GetSetElements(a.nftSet(false))
	if perr := permission(err); perr != nil {
		return nil, perr
	}
	if err != nil {
		return nil, err
	}
	left := make(map[netip.Addr]time.Duration, len(es))
	for _, e := range es {
		addr, ok := netip.AddrFromSlice(e.Key)
		switch {
		case !ok:
		case e.Timeout == 0 && e.Expires == 0:
			left[addr] = forever // put there without a timeout
		default:
			left[addr] = e.Expires
		}
	}
	return left, nil
}

// put adds the elements in one transaction. Those already in the set
// are added, deleted and added again with their full timeout, so that
// their expiry is set whatever the kernel does when an existing element
// is added, and so that they are never in the set twice nor missing from
// it for an instant; the others are only added (which, for one another
// program put there meanwhile, keeps its own timeout).
func (a *nftAdder) put(elems []element) error {
	c, err := a.conn()
	if err != nil {
		return err
	}
	s := a.nftSet(elems[0].addr.Is6())
	es := make([]nftables.SetElement, 0, len(elems))
	var again, keys []nftables.SetElement
	for _, e := range elems {
		el := nftables.SetElement{Key: e.addr.AsSlice(), Timeout: e.timeout}
		es = append(es, el)
		if e.present {
			again = append(again, el)
			keys = append(keys, nftables.SetElement{Key: e.addr.AsSlice()})
		}
	}
	if err := c.SetAddElements(s, es); err != nil {
		return err
	}
	if len(keys) > 0 {
		if err := c.SetDeleteElements(s, keys); err != nil {
			return err
		}
		if err := c.SetAddElements(s, again); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
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

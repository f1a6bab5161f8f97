package netlab

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// This file holds the devices a test builds on top of namespaces: veth
// pairs with names and a bridge of the test's choosing, bridges, VLAN
// devices, and the namespace Isolate runs a test in.

var (
	selfOnce sync.Once
	self     *Netns
)

// Self returns the namespace Isolate runs this process in, so that the
// devices a test makes there are made through netlab like any other. It
// fails the test outside Isolate: the namespace the suite runs in is never
// changed. The namespace is Isolate's to delete; the devices made in it
// go at the end of the test that made them.
func Self(t testing.TB) *Netns {
	t.Helper()
	Require(t)
	name := IsolatedNetns()
	if name == "" {
		t.Fatalf("netlab: %s makes devices in its own namespace: call netlab.Isolate first", t.Name())
	}
	selfOnce.Do(func() { self = &Netns{name: name} })
	return self
}

// VethConfig describes a veth pair for NewVethWith.
type VethConfig struct {
	Addressing
	// AName and BName name the devices; empty means the next of veth0,
	// veth1, ... in its namespace. A test that deletes the pair and
	// makes it again, or that must know the names before the pair
	// exists, gives them.
	AName, BName string
	// Bridge, when set, names a bridge in A's namespace (NewBridge) that
	// A becomes a port of: A's addresses are then the bridge's, as on a
	// host whose addresses sit on a bridge.
	Bridge string
}

// NewVeth joins a and b with a veth pair (devices veth0, veth1, ... in
// each), addressed as addr says, and up. The pair is deleted when the test
// ends, if it still exists.
func NewVeth(t testing.TB, a, b *Netns, addr Addressing) *Veth {
	t.Helper()
	return NewVethWith(t, a, b, VethConfig{Addressing: addr})
}

// NewVethWith is NewVeth as cfg says.
func NewVethWith(t testing.TB, a, b *Netns, cfg VethConfig) *Veth {
	t.Helper()
	Require(t)
	v, err := createVeth(a, b, cfg)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() {
		if err := v.delete(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	return v
}

// createVeth makes and configures the pair.
func createVeth(a, b *Netns, cfg VethConfig) (*Veth, error) {
	addr, err := cfg.Addressing.resolve()
	if err != nil {
		return nil, err
	}
	name := func(n *Netns, given string) string {
		if given != "" {
			return given
		}
		return n.nextDev("veth")
	}
	v := &Veth{
		A: Endpoint{NS: a, Dev: name(a, cfg.AName), Addr: addr.A, Addr6: addr.A6},
		B: Endpoint{NS: b, Dev: name(b, cfg.BName), Addr: addr.B, Addr6: addr.B6},
	}
	// The peer is created in b directly, so equal names in a and b
	// (veth0 and veth0) never meet.
	if _, err := a.ip("link", "add", v.A.Dev, "type", "veth", "peer", "name", v.B.Dev, "netns", b.name); err != nil {
		return nil, err
	}
	// The device that holds A's addresses.
	aAddr := v.A
	if cfg.Bridge != "" {
		if _, err := a.ip("link", "set", "dev", v.A.Dev, "addrgenmode", "none"); err != nil {
			return nil, err
		}
		if _, err := a.ip("link", "set", "dev", v.A.Dev, "master", cfg.Bridge, "up"); err != nil {
			return nil, err
		}
		aAddr.Dev = cfg.Bridge
	}
	if err := configureLink(aAddr, v.B); err != nil {
		return nil, err
	}
	return v, nil
}

// Delete deletes the pair now; a test may make it again with the same
// names. Deleting it twice fails the test.
func (v *Veth) Delete(t testing.TB) {
	t.Helper()
	if v.deleted {
		t.Fatalf("netlab: veth pair %s/%s-%s/%s deleted twice", v.A.NS, v.A.Dev, v.B.NS, v.B.Dev)
	}
	if _, err := v.A.NS.ip("link", "del", "dev", v.A.Dev); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	v.deleted = true
}

// delete deletes the pair at the end of the test, unless Delete did, or
// a namespace the test deleted took it along.
func (v *Veth) delete() error {
	if v.deleted {
		return nil
	}
	v.deleted = true
	return delLink(v.A.NS, v.A.Dev)
}

// delLink deletes dev in n, if it is still there.
func delLink(n *Netns, dev string) error {
	if _, err := n.ip("link", "show", "dev", dev); err != nil {
		return nil // gone with its namespace or its parent
	}
	_, err := n.ip("link", "del", "dev", dev)
	return err
}

// NewBridge makes a bridge in n, named name (or the next of br0, br1, ...
// when name is empty), brings it up, and returns its name. It is deleted
// when the test ends. It skips the test, with the reason, where the kernel
// cannot make bridges.
func NewBridge(t testing.TB, n *Netns, name string) string {
	t.Helper()
	Require(t)
	if name == "" {
		name = n.nextDev("br")
	}
	if _, err := n.ip("link", "add", name, "type", "bridge"); err != nil {
		t.Skipf("netlab: this kernel cannot make bridges: %v", err)
	}
	t.Cleanup(func() {
		if err := delLink(n, name); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	n.IP(t, "link", "set", "dev", name, "up")
	return name
}

// VLAN is a pair of VLAN devices, one on each side of a link.
type VLAN struct {
	A, B Endpoint
}

// NewVLAN puts VLAN id over the devices a and b (a.Dev in a.NS, b.Dev in
// b.NS: the two ends of a link, or a bridge that has one of them as a
// port; their addresses are not used). The new devices are the next of
// vlan0, vlan1, ... in each namespace, addressed as addr says, and up;
// they are deleted when the test ends. It skips the test, with the reason,
// where the kernel cannot make VLAN devices.
func NewVLAN(t testing.TB, a, b Endpoint, id int, addr Addressing) *VLAN {
	t.Helper()
	Require(t)
	addr, err := addr.resolve()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	l := &VLAN{
		A: Endpoint{NS: a.NS, Dev: a.NS.nextDev("vlan"), Addr: addr.A, Addr6: addr.A6},
		B: Endpoint{NS: b.NS, Dev: b.NS.nextDev("vlan"), Addr: addr.B, Addr6: addr.B6},
	}
	for _, e := range [][2]Endpoint{{a, l.A}, {b, l.B}} {
		parent, dev := e[0], e[1]
		if out, err := dev.NS.ip("link", "add", "link", parent.Dev, "name", dev.Dev, "type", "vlan", "id", fmt.Sprint(id)); err != nil {
			if strings.Contains(out, "Cannot find device") {
				t.Fatalf("netlab: %v", err)
			}
			t.Skipf("netlab: this kernel cannot make VLAN devices: %v", err)
		}
		t.Cleanup(func() {
			if err := delLink(dev.NS, dev.Dev); err != nil {
				t.Errorf("netlab: %v", err)
			}
		})
	}
	if err := configureLink(l.A, l.B); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return l
}

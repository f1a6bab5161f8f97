package listener

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// A key names one socket: a protocol, a port and the address it is bound
// to. An IPv6 link-local address carries its zone.
type key struct {
	proto wire.Proto
	port  uint16
	addr  netip.Addr
}

func (k key) String() string {
	return k.proto.String() + " " + netip.AddrPortFrom(k.addr, k.port).String()
}

// network is the Go network name. The "4" and "6" forms keep each socket
// to one family: Go sets IPV6_V6ONLY on every "tcp6"/"udp6" socket, so
// [::] and 0.0.0.0 can be bound side by side on the same port whatever
// net.ipv6.bindv6only says.
func (k key) network() string {
	fam := "4"
	if k.addr.Is6() {
		fam = "6"
	}
	return k.proto.String() + fam
}

// conflicts reports whether the kernel would refuse to bind a and b at
// the same time: same protocol and port, same family, and the same
// address or one of them the wildcard.
func (k key) conflicts(o key) bool {
	if k.proto != o.proto || k.port != o.port || k.addr.Is4() != o.addr.Is4() {
		return false
	}
	return k.addr == o.addr || k.addr.IsUnspecified() || o.addr.IsUnspecified()
}

func compareKeys(a, b key) int {
	return cmp.Or(
		cmp.Compare(a.proto, b.proto),
		cmp.Compare(a.port, b.port),
		a.addr.Compare(b.addr),
	)
}

// A binding is a socket the spec asks for, with the doors that use it
// (for messages).
type binding struct {
	key
	doors []string
}

// plan turns a spec into the sockets it needs, sorted by key.
func (s *Source) plan(spec capture.Spec) ([]*binding, error) {
	var shared []netip.Addr // the addresses of ports without Targets
	switch {
	case len(spec.Interfaces) == 0 || len(spec.Interfaces) == 1 && spec.Interfaces[0] == "any":
		shared = append(shared, netip.IPv4Unspecified())
		if !spec.IPv4Only {
			shared = append(shared, netip.IPv6Unspecified())
		}
	default:
		var err error
		shared, err = s.interfaceAddrs(spec.Interfaces, spec.IPv4Only)
		if err != nil {
			return nil, err
		}
	}

	byKey := map[key]*binding{}
	var out []*binding
	for _, p := range spec.Ports {
		if p.Proto != wire.TCP && p.Proto != wire.UDP {
			return nil, fmt.Errorf("listener: %s port %d: unsupported protocol", p.Proto, p.Port)
		}
		addrs := shared
		if p.Targets != nil {
			addrs = nil
			for _, t := range p.Targets {
				t = t.Unmap()
				if t.Is6() && spec.IPv4Only {
					s.logf("listener: %s: ignoring IPv6 target %s (IPv4 only)", describe(p.Doors, p.Proto, p.Port), t)
					continue
				}
				if t.Is6() && t.Zone() == "" && (t.IsLinkLocalUnicast() || t.IsLinkLocalMulticast()) {
					t = t.WithZone(zoneOf(t))
				}
				addrs = append(addrs, t)
			}
		}
		for _, a := range addrs {
			k := key{proto: p.Proto, port: p.Port, addr: a}
			b := byKey[k]
			if b == nil {
				b = &binding{key: k}
				byKey[k] = b
				out = append(out, b)
			}
			for _, d := range p.Doors {
				if !slices.Contains(b.doors, d) {
					b.doors = append(b.doors, d)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b *binding) int { return compareKeys(a.key, b.key) })
	return out, nil
}

// interfaceAddrs returns the addresses of the named interfaces, IPv6
// link-local ones with their zone.
func (s *Source) interfaceAddrs(names []string, ipv4Only bool) ([]netip.Addr, error) {
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listener: listing network interfaces: %w", err)
	}
	var addrs []netip.Addr
	for _, name := range names {
		i := slices.IndexFunc(ifis, func(ifi net.Interface) bool { return ifi.Name == name })
		if i < 0 {
			var have []string
			for _, ifi := range ifis {
				have = append(have, ifi.Name)
			}
			return nil, fmt.Errorf("listener: interface %q does not exist (this host has: %s); fix -i/--interface or Interface in [options]",
				name, strings.Join(have, ", "))
		}
		ifi := ifis[i]
		ias, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("listener: reading the addresses of interface %s: %w", name, err)
		}
		n := 0
		for _, ia := range ias {
			ipn, ok := ia.(*net.IPNet)
			if !ok {
				continue
			}
			a, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			a = a.Unmap()
			if a.Is6() {
				if ipv4Only {
					continue
				}
				if a.IsLinkLocalUnicast() {
					a = a.WithZone(ifi.Name)
				}
			}
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
			n++
		}
		if n == 0 {
			s.logf("listener: interface %s has no usable address; no knock can arrive there until it gets one", name)
		}
	}
	return addrs, nil
}

// zoneOf returns the name of the interface that holds the IPv6 link-local
// address a, or "" when none does.
func zoneOf(a netip.Addr) string {
	ifis, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifi := range ifis {
		ias, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, ia := range ias {
			if ipn, ok := ia.(*net.IPNet); ok {
				if b, ok := netip.AddrFromSlice(ipn.IP); ok && b == a {
					return ifi.Name
				}
			}
		}
	}
	return ""
}

package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// sourceHint is what a Source value looks like, for messages.
const sourceHint = "write an address or a prefix, such as 192.0.2.7, 192.0.2.0/24 or 2001:db8::/32, several separated by commas"

// ParseSources parses a Source value: "CIDR[, CIDR ...]", IPv4 or IPv6.
// A bare address stands for itself alone (/32 or /128). Host bits below
// the prefix length are cleared, as iptables and nft do, and an
// IPv4-mapped IPv6 prefix is returned as the IPv4 prefix it maps, since
// knocks from IPv4 carry IPv4 addresses.
func ParseSources(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("empty entry in %q: %s", v, sourceHint)
		}
		p, err := parseSource(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parseSource(f string) (netip.Prefix, error) {
	addr, _, hasBits := strings.Cut(f, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (%s)", f, sourceHint)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has a zone: packets carry none, write the address alone (%s)", f, a.WithZone(""))
	}
	p := netip.PrefixFrom(a, a.BitLen())
	if hasBits {
		if p, err = netip.ParsePrefix(f); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (the length after / is at most %d for %s)", f, a.BitLen(), a)
		}
	}
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

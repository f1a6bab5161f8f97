//go:build linux

package main

import (
	"net/netip"
	"os"
	"testing"
)

// TestKsetAddresses: the phase's knockers are distinct, inside
// 198.18.0.0/15, and outside the link's 198.18.0.0/24.
func TestKsetAddresses(t *testing.T) {
	bench, link := netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("198.18.0.0/24")
	seen := map[netip.Addr]bool{}
	check := func(a netip.Addr) {
		if !bench.Contains(a) || link.Contains(a) || seen[a] || a.As4()[3] == 0 || a.As4()[3] == 255 {
			t.Fatalf("%v: repeated, or outside 198.18.0.0/15 less 198.18.0.0/24, or ends in .0 or .255", a)
		}
		seen[a] = true
	}
	for i := range 500 {
		check(latKnocker(i))
	}
	for i := range 65000 {
		if a := crowdSource(i); a.As4()[3] != 0 && a.As4()[3] != 255 {
			check(a)
		}
	}
}

func TestKsetOpening(t *testing.T) {
	for v, want := range map[ksetVariant]string{
		{"ours", "NFT_Set"}:       "NFT_Set = inet kbench lat4",
		{"ours", "IPSet"}:         "IPSet = lat4",
		{"knockd", "nft shell"}:   "Start_Command = nft add element inet kbench lat4 { %IP% timeout 300s }",
		{"knockd", "ipset shell"}: "Start_Command = ipset add lat4 %IP% timeout 300 -exist",
	} {
		if got := v.opening("lat4"); got != want {
			t.Errorf("%v: %q, want %q", v, got, want)
		}
	}
}

// TestChildCPU reads this process's own line: the fields are where
// childCPU looks (a test binary has waited for no children: 0).
func TestChildCPU(t *testing.T) {
	if got := childCPU(os.Getpid()); got != 0 {
		t.Errorf("childCPU of the test = %v, want 0", got)
	}
}

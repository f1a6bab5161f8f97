package kset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/knock-go/knock/config"
)

// fakeKernel answers the checks from maps, as the kernel would.
type fakeKernel struct {
	tables map[string]bool    // "inet knockd"
	sets   map[string]SetInfo // "inet knockd ssh4" or an ipset's name
	err    error              // returned for every question when set
}

func (k fakeKernel) NFTSet(s config.NFTSet) (SetInfo, error) {
	if k.err != nil {
		return SetInfo{}, k.err
	}
	if !k.tables[s.Family+" "+s.Table] {
		return SetInfo{NoTable: true, Missing: true}, nil
	}
	if info, ok := k.sets[s.String()]; ok {
		return info, nil
	}
	return SetInfo{Missing: true}, nil
}

func (k fakeKernel) IPSet(name string) (SetInfo, error) {
	if k.err != nil {
		return SetInfo{}, k.err
	}
	if info, ok := k.sets[name]; ok {
		return info, nil
	}
	return SetInfo{Missing: true}, nil
}

var lab = fakeKernel{
	tables: map[string]bool{"inet knockd": true},
	sets: map[string]SetInfo{
		"inet knockd ssh4":     {Type: "ipv4_addr", Timeout: true},
		"inet knockd ssh6":     {Type: "ipv6_addr", Timeout: true},
		"inet knockd forever4": {Type: "ipv4_addr"},
		"knock4":               {Type: "hash:ip", Family: "inet", Timeout: true},
		"knock6":               {Type: "hash:ip", Family: "inet6", Timeout: true},
		"plain4":               {Type: "hash:ip", Family: "inet"},
		"net4":                 {Type: "hash:net", Family: "inet", Timeout: true},
	},
}

func nft(family, table, name string) config.NFTSet {
	return config.NFTSet{Family: family, Table: table, Name: name}
}

// TestCheckMessages: every unusable set is refused with one message
// naming the door, the key and the set, and the command that makes it
// right, on a fake kernel, so that it runs unprivileged.
func TestCheckMessages(t *testing.T) {
	tests := []struct {
		name string
		d    config.Door
		k    Kernel
		msg  string
	}{
		{"nft: no table", config.Door{NFTSet: nft("ip", "knockd", "ssh4")}, lab,
			"[ssh] NFT_Set = ip knockd ssh4: there is no table ip knockd: create it with: nft add table ip knockd && nft add set ip knockd ssh4 '{ type ipv4_addr; flags timeout; }'"},
		{"nft: no set", config.Door{NFTSet6: nft("inet", "knockd", "nosuch")}, lab,
			"[ssh] NFT_Set_6 = inet knockd nosuch: table inet knockd has no set nosuch: create it with: nft add set inet knockd nosuch '{ type ipv6_addr; flags timeout; }'"},
		{"nft: wrong family", config.Door{NFTSet: nft("inet", "knockd", "ssh6")}, lab,
			"[ssh] NFT_Set = inet knockd ssh6: the set holds ipv6_addr, not ipv4_addr: create it with: nft delete set inet knockd ssh6 && nft add set inet knockd ssh6 '{ type ipv4_addr; flags timeout; }'"},
		{"nft: IPv4 set for IPv6", config.Door{NFTSet6: nft("inet", "knockd", "ssh4")}, lab,
			"[ssh] NFT_Set_6 = inet knockd ssh4: the set holds ipv4_addr, not ipv6_addr: create it with: nft delete set inet knockd ssh4 && nft add set inet knockd ssh4 '{ type ipv6_addr; flags timeout; }'"},
		{"nft: no timeouts", config.Door{NFTSet: nft("inet", "knockd", "forever4")}, lab,
			"[ssh] NFT_Set = inet knockd forever4: the set has no timeouts (flags timeout), so its elements would never expire: create it with: nft delete set inet knockd forever4 && nft add set inet knockd forever4 '{ type ipv4_addr; flags timeout; }'"},
		{"nft: other error", config.Door{NFTSet: nft("inet", "knockd", "ssh4")}, fakeKernel{err: errors.New("netlink: EBUSY")},
			"[ssh] NFT_Set = inet knockd ssh4: listing set inet knockd ssh4: netlink: EBUSY"},
		{"ipset: missing", config.Door{IPSet: "nosuch"}, lab,
			"[ssh] IPSet = nosuch: there is no ipset nosuch: create it with: ipset create nosuch hash:ip family inet timeout 60"},
		{"ipset: wrong family", config.Door{IPSet: "knock6"}, lab,
			"[ssh] IPSet = knock6: the ipset is not of family inet: create it with: ipset destroy knock6 && ipset create knock6 hash:ip family inet timeout 60"},
		{"ipset: IPv4 set for IPv6", config.Door{IPSet6: "knock4"}, lab,
			"[ssh] IPSet_6 = knock4: the ipset is not of family inet6: create it with: ipset destroy knock4 && ipset create knock4 hash:ip family inet6 timeout 60"},
		{"ipset: wrong type", config.Door{IPSet: "net4"}, lab,
			"[ssh] IPSet = net4: the ipset is hash:net, not hash:ip: create it with: ipset destroy net4 && ipset create net4 hash:ip family inet timeout 60"},
		{"ipset: no timeout", config.Door{IPSet: "plain4"}, lab,
			"[ssh] IPSet = plain4: the ipset has no timeout, so its entries would never expire: create it with: ipset destroy plain4 && ipset create plain4 hash:ip family inet timeout 60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.d
			d.Name = "ssh"
			_, err := New([]*config.Door{&d}, Options{Kernel: tt.k})
			var se *SetError
			if !errors.As(err, &se) || err.Error() != tt.msg {
				t.Errorf("New: %v\nwant *SetError %s", err, tt.msg)
			}
		})
	}
}

// TestCheckNoNetAdmin: a refusal by the kernel says which capability is
// missing and how to give it, for both kinds of set.
func TestCheckNoNetAdmin(t *testing.T) {
	k := fakeKernel{err: fmt.Errorf("kset: %w (operation not permitted)", ErrNoNetAdmin)}
	for _, d := range []config.Door{{Name: "ssh", NFTSet: nft("inet", "knockd", "ssh4")}, {Name: "ssh", IPSet: "knock4"}} {
		_, err := New([]*config.Door{&d}, Options{Kernel: k})
		if !errors.Is(err, ErrNoNetAdmin) {
			t.Fatalf("New: %v, want ErrNoNetAdmin", err)
		}
		for _, w := range []string{"CAP_NET_ADMIN", "setcap cap_net_raw,cap_net_admin+ep", "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN"} {
			if !contains(err.Error(), w) {
				t.Errorf("%v does not say %q", err, w)
			}
		}
	}
}

// TestUpdateKeepsOnError: an Update refused leaves the Sets as they were.
func TestUpdateKeepsOnError(t *testing.T) {
	good := &config.Door{Name: "ssh", NFTSet: nft("inet", "knockd", "ssh4")}
	s, err := New([]*config.Door{good}, Options{Kernel: lab})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	bad := &config.Door{Name: "web", NFTSet: nft("inet", "knockd", "nosuch")}
	if err := s.Update([]*config.Door{good, bad}); err == nil {
		t.Fatal("Update with a missing set succeeded")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.workers) != 1 || s.workers["nft set inet knockd ssh4"] == nil {
		t.Errorf("workers after a refused Update: %v, want only ssh4's", s.workers)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

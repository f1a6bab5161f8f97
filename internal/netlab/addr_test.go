package netlab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAddressingResolve(t *testing.T) {
	a := netip.MustParseAddr
	for _, c := range []struct {
		in      Addressing
		want    Addressing
		wantErr string
	}{
		{in: Addressing{}, want: Addressing{A: a("198.18.0.1"), B: a("198.18.0.2"), A6: a("2001:db8::1"), B6: a("2001:db8::2")}},
		{in: Addressing{NoIPv6: true}, want: Addressing{A: a("198.18.0.1"), B: a("198.18.0.2"), NoIPv6: true}},
		{in: Addressing{A: a("198.19.255.1"), B6: a("2001:db8:ffff::9")}, want: Addressing{A: a("198.19.255.1"), B: a("198.18.0.2"), A6: a("2001:db8::1"), B6: a("2001:db8:ffff::9")}},
		{in: Addressing{A: a("10.0.0.1")}, wantErr: "10.0.0.1 is outside 198.18.0.0/15"},
		{in: Addressing{B: a("192.168.1.2")}, wantErr: "192.168.1.2 is outside 198.18.0.0/15"},
		{in: Addressing{A: a("172.16.0.1")}, wantErr: "outside"},
		{in: Addressing{A: a("198.20.0.1")}, wantErr: "outside"},
		{in: Addressing{A6: a("fd00::1")}, wantErr: "fd00::1 is outside 2001:db8::/32"},
		{in: Addressing{B6: a("198.18.0.9")}, wantErr: "outside"},
		{in: Addressing{A: a("198.18.0.2")}, wantErr: "same address"},
	} {
		got, err := c.in.resolve()
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%+v: error %v, want one saying %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%+v: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

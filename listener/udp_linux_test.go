package listener

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// Control messages as a Linux amd64/arm64 kernel lays them out: a 16-byte
// cmsghdr (len uint64, level int32, type int32), then the data, padded to 8.
var (
	cmsgPktinfo4 = []byte{
		0x1c, 0, 0, 0, 0, 0, 0, 0, // cmsg_len = 16 + 12
		0, 0, 0, 0, // cmsg_level = IPPROTO_IP
		8, 0, 0, 0, // cmsg_type = IP_PKTINFO
		1, 0, 0, 0, // ipi_ifindex = 1
		127, 0, 0, 1, // ipi_spec_dst = 127.0.0.1 (the local address)
		127, 0, 0, 2, // ipi_addr = 127.0.0.2 (the header's destination)
		0, 0, 0, 0, // padding
	}
	cmsgPktinfo6 = []byte{
		0x24, 0, 0, 0, 0, 0, 0, 0, // cmsg_len = 16 + 20
		41, 0, 0, 0, // cmsg_level = IPPROTO_IPV6
		50, 0, 0, 0, // cmsg_type = IPV6_PKTINFO
		0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // ipi6_addr = fe80::1
		2, 0, 0, 0, // ipi6_ifindex = 2
		0, 0, 0, 0, // padding
	}
	cmsgTimestampNS = []byte{
		0x20, 0, 0, 0, 0, 0, 0, 0, // cmsg_len = 16 + 16
		1, 0, 0, 0, // cmsg_level = SOL_SOCKET
		35, 0, 0, 0, // cmsg_type = SCM_TIMESTAMPNS
		0x00, 0x5e, 0xd0, 0xb2, 0, 0, 0, 0, // tv_sec = 3000000000
		0x15, 0xcd, 0x5b, 0x07, 0, 0, 0, 0, // tv_nsec = 123456789
	}
)

func TestParseOOB(t *testing.T) {
	if !is64bitLittleEndian() {
		t.Skip("the byte literals are for 64-bit little-endian Linux")
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	ts := time.Unix(3000000000, 123456789)
	for _, tc := range []struct {
		name string
		oob  []byte
		dst  netip.Addr
		rx   time.Time
	}{
		{"empty", nil, netip.Addr{}, time.Time{}},
		{"v4", cmsgPktinfo4, netip.MustParseAddr("127.0.0.2"), time.Time{}},
		{"v6", cmsgPktinfo6, netip.MustParseAddr("fe80::1"), time.Time{}},
		{"v4 and time", cat(cmsgPktinfo4, cmsgTimestampNS), netip.MustParseAddr("127.0.0.2"), ts},
		{"time and v6", cat(cmsgTimestampNS, cmsgPktinfo6), netip.MustParseAddr("fe80::1"), ts},
		{"truncated header", cmsgPktinfo4[:10], netip.Addr{}, time.Time{}},
		{"truncated data", cmsgPktinfo4[:20], netip.Addr{}, time.Time{}},
		{"time, then truncated", cat(cmsgTimestampNS, cmsgPktinfo4[:20]), netip.Addr{}, ts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst, rx := parseOOB(tc.oob)
			if dst != tc.dst || !rx.Equal(tc.rx) {
				t.Errorf("parseOOB() = %v, %v; want %v, %v", dst, rx, tc.dst, tc.rx)
			}
		})
	}
	oob := cat(cmsgTimestampNS, cmsgPktinfo6)
	if n := testing.AllocsPerRun(100, func() { parseOOB(oob) }); n != 0 {
		t.Errorf("parseOOB allocates %v times", n)
	}
}

func is64bitLittleEndian() bool {
	switch runtime.GOARCH {
	case "amd64", "arm64", "riscv64", "ppc64le", "loong64", "mips64le":
		return true
	}
	return false
}

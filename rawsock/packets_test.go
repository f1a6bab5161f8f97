package rawsock

import (
	"encoding/binary"
	"net/netip"
)

// Packet builders for the filter tests and the live test. The decoder
// tests spell their packets out byte by byte instead.

// ip4 returns an IPv4 packet. frag is the flags and fragment offset
// field; opts (a multiple of 4 bytes) follow the fixed header.
func ip4(src, dst string, proto uint8, frag uint16, opts, payload []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+len(payload))
	b[0] = 0x40 | uint8(hl/4)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:6], 0x1234)
	binary.BigEndian.PutUint16(b[6:8], frag)
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], opts)
	copy(b[hl:], payload)
	binary.BigEndian.PutUint16(b[10:12], checksum(b[:hl], 0))
	if proto == protoTCP && len(payload) >= 20 && frag&0x1fff == 0 {
		binary.BigEndian.PutUint16(b[hl+16:hl+18], 0)
		sum := pseudo4(s, d, proto, len(payload))
		binary.BigEndian.PutUint16(b[hl+16:hl+18], checksum(b[hl:], sum))
	}
	return b
}

// ip6 returns an IPv6 packet whose first next header is nh; ext holds
// the extension headers, already chained.
func ip6(src, dst string, nh uint8, ext, payload []byte) []byte {
	b := make([]byte, 40+len(ext)+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(len(ext)+len(payload)))
	b[6] = nh
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[40:], ext)
	copy(b[40+len(ext):], payload)
	return b
}

// tcpHdr returns a 20-byte TCP header.
func tcpHdr(sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint32(b[4:8], 0x01020304)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:16], 64240)
	return b
}

// udpHdr returns a UDP header followed by payload.
func udpHdr(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

// optHdr returns an 8-byte IPv6 options header (hop-by-hop or
// destination options) padded with PadN.
func optHdr(nh uint8) []byte { return []byte{nh, 0, 1, 4, 0, 0, 0, 0} }

// fragHdr returns an IPv6 fragment header.
func fragHdr(nh uint8, offset uint16, more bool) []byte {
	b := []byte{nh, 0, 0, 0, 0, 0, 0x12, 0x34}
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:4], v)
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func pseudo4(s, d [4]byte, proto uint8, n int) uint32 {
	var sum uint32
	for i := 0; i < 4; i += 2 {
		sum += uint32(s[i])<<8 | uint32(s[i+1])
		sum += uint32(d[i])<<8 | uint32(d[i+1])
	}
	return sum + uint32(proto) + uint32(n)
}

func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

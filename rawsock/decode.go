package rawsock

import (
	"encoding/binary"
	"net/netip"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// tcpFlagMask keeps the six TCP flags that TCPFlags can name.
const tcpFlagMask = wire.FIN | wire.SYN | wire.RST | wire.PSH | wire.ACK | wire.URG

// maxIPv6Ext bounds the IPv6 extension header walk. Legitimate packets
// carry a handful at most.
const maxIPv6Ext = 8

// Decode reads a TCP or UDP packet starting at its IPv4 or IPv6 header
// and returns its addresses, protocol, destination port and, for TCP, its
// flags. Time is left zero. It reports false for anything else: other
// protocols, truncated or malformed headers, IPv4 and IPv6 fragments
// other than the first, IPv6 packets whose extension headers end in ESP
// or no next header, or that are still being routed (a routing header with
// segments left), and IPv6 packets with IPv4-mapped addresses, which
// Linux drops. Bytes past the IP length (link-layer padding) are ignored;
// the payload need not be complete.
//
// Decode never allocates.
func Decode(b []byte) (ev capture.Event, ok bool) {
	if len(b) == 0 {
		return ev, false
	}
	switch b[0] >> 4 {
	case 4:
		return decode4(b)
	case 6:
		return decode6(b)
	}
	return ev, false
}

func decode4(b []byte) (ev capture.Event, ok bool) {
	// 0: version, IHL | 1: TOS | 2-3: total length | 4-5: ID
	// 6-7: flags, fragment offset | 8: TTL | 9: protocol | 10-11: checksum
	// 12-15: source | 16-19: destination | 20-: options
	if len(b) < 20 {
		return ev, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || len(b) < ihl {
		return ev, false
	}
	if total < len(b) {
		b = b[:total]
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return ev, false
	}
	ev.Src = netip.AddrFrom4([4]byte(b[12:16]))
	ev.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	return transport(ev, b[9], b[ihl:])
}

func decode6(b []byte) (ev capture.Event, ok bool) {
	// 0-3: version, traffic class, flow label | 4-5: payload length
	// 6: next header | 7: hop limit | 8-23: source | 24-39: destination
	if len(b) < 40 {
		return ev, false
	}
	// A payload length of 0 is a jumbogram or a GRO super-packet: the
	// captured length is all there is to go by.
	if plen := int(binary.BigEndian.Uint16(b[4:6])); plen != 0 && 40+plen < len(b) {
		b = b[:40+plen]
	}
	ev.Src = netip.AddrFrom16([16]byte(b[8:24]))
	ev.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	if ev.Src.Is4In6() || ev.Dst.Is4In6() {
		// Linux drops these (RFC 4291 2.5.5.2); counting one would let
		// an IPv6 packet knock for an IPv4 address.
		return ev, false
	}
	nh, off := b[6], 40
	for i := 0; i <= maxIPv6Ext; i++ {
		switch nh {
		case protoTCP, protoUDP:
			return transport(ev, nh, b[off:])
		}
		if i == maxIPv6Ext || len(b)-off < 8 {
			return ev, false
		}
		h := b[off:]
		var n int
		switch nh {
		case 0: // hop-by-hop options: only right after the fixed header
			if i != 0 {
				return ev, false
			}
			n = (int(h[1]) + 1) * 8
		case 43: // routing
			if h[3] != 0 {
				// Segments left: this host is not the final
				// destination.
				return ev, false
			}
			n = (int(h[1]) + 1) * 8
		case 44: // fragment
			if binary.BigEndian.Uint16(h[2:4])&0xfff8 != 0 {
				return ev, false
			}
			n = 8
		case 51: // authentication header, in 4-octet units
			n = (int(h[1]) + 2) * 4
		case 60, 135, 139, 140, 253, 254:
			// destination options, mobility, HIP, shim6, experiments:
			// the RFC 6564 layout.
			n = (int(h[1]) + 1) * 8
		default: // ESP (50), no next header (59), anything unknown
			return ev, false
		}
		if n > len(h) {
			return ev, false
		}
		nh, off = h[0], off+n
	}
	return ev, false
}

// transport fills in the TCP or UDP part of ev from the transport header
// t.
func transport(ev capture.Event, proto uint8, t []byte) (capture.Event, bool) {
	switch proto {
	case protoTCP:
		// 0-1: source port | 2-3: destination port | 4-7: sequence
		// 8-11: acknowledgment | 12: data offset | 13: flags
		if len(t) < 14 || t[12]>>4 < 5 {
			return ev, false
		}
		ev.Proto = wire.TCP
		ev.Flags = t[13] & tcpFlagMask
	case protoUDP:
		// 0-1: source port | 2-3: destination port | 4-5: length
		// 6-7: checksum
		if len(t) < 8 {
			return ev, false
		}
		ev.Proto = wire.UDP
	default:
		return ev, false
	}
	ev.Port = binary.BigEndian.Uint16(t[2:4])
	return ev, true
}

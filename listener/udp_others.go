//go:build !linux

package listener

import (
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// oobSize holds the destination-address control message of either family.
var oobSize = max(len(ipv4.NewControlMessage(ipv4.FlagDst)), len(ipv6.NewControlMessage(ipv6.FlagDst)))

// listenUDP binds a UDP socket that reports the destination address of
// each datagram, so that a socket bound to the wildcard knows which of the
// host's addresses a knock was sent to. Where the system cannot say,
// datagrams are reported with the bound address.
func listenUDP(network, addr string) (*net.UDPConn, error) {
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	if network == "udp6" {
		_ = ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst, true)
	} else {
		_ = ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst, true)
	}
	return c, nil
}

// parseOOB returns the destination address from the control messages in
// oob. The receive time is not asked for here: it is always zero, and
// the time of the read stands in for it.
func parseOOB(oob []byte) (dst netip.Addr, rx time.Time) {
	if len(oob) == 0 {
		return dst, rx
	}
	var cm4 ipv4.ControlMessage
	if cm4.Parse(oob) == nil && cm4.Dst != nil {
		if a, ok := netip.AddrFromSlice(cm4.Dst); ok {
			return a, rx
		}
	}
	var cm6 ipv6.ControlMessage
	if cm6.Parse(oob) == nil && cm6.Dst != nil {
		if a, ok := netip.AddrFromSlice(cm6.Dst); ok {
			return a, rx
		}
	}
	return dst, rx
}

package listener

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// oobSize holds a packet-info and a timestamp control message.
var oobSize = unix.CmsgSpace(unix.SizeofInet6Pktinfo) + unix.CmsgSpace(unix.SizeofInet4Pktinfo) +
	unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// listenUDP binds a UDP socket that reports, for each datagram, its
// destination address (IP_PKTINFO, IPV6_RECVPKTINFO: a socket bound to the
// wildcard does not otherwise know which of the host's addresses a knock
// was sent to) and the time the kernel received it (SO_TIMESTAMPNS, which
// merge orders knocks by). The options are set before bind, so no
// datagram lacks them.
func listenUDP(network, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if strings.HasSuffix(network, "6") {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			}
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return &net.OpError{Op: "setsockopt", Net: network, Err: serr}
		}
		return nil
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// parseOOB returns the destination address and the kernel's receive time
// from the control messages in oob; each is the zero value when missing.
// It does not allocate.
func parseOOB(oob []byte) (dst netip.Addr, rx time.Time) {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ipi_ifindex; struct in_addr
			// ipi_spec_dst; struct in_addr ipi_addr; }: ipi_addr is the
			// header's destination.
			dst = netip.AddrFrom4([4]byte(data[8:12]))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { struct in6_addr ipi6_addr; int
			// ipi6_ifindex; }
			dst = netip.AddrFrom16([16]byte(data[0:16]))
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			// The kernel aligns control message data for a long, which
			// is enough for a struct timespec.
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			rx = time.Unix(ts.Unix())
		}
		oob = rest
	}
	return dst, rx
}

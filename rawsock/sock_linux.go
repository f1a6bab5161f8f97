//go:build linux

package rawsock

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// readSize is the most of a packet a reader looks at. Only the headers
// matter; the kernel truncates the rest.
const readSize = 16 << 10

// sockKey names a packet socket of a Source.
type sockKey struct {
	name  string // the interface; "" for all of them
	proto uint16 // ETH_P_IP or ETH_P_IPV6
}

func (k sockKey) String() string {
	fam := "IPv4"
	if k.proto == unix.ETH_P_IPV6 {
		fam = "IPv6"
	}
	if k.name == "" {
		return fam + " socket on all interfaces"
	}
	return fam + " socket on " + k.name
}

// sock is one AF_PACKET socket and its reader's state.
//
// A socket is bound to one ethertype, not ETH_P_ALL: the kernel then
// hands it packets where it hands them to its own IP stack, after VLAN
// tags, bridges and bonds have been dealt with, so it sees each received
// packet once, on the interface IP sees it on, and never the packets the
// host sends (loopback's outgoing copy included).
type sock struct {
	key   sockKey
	index int32 // the interface index; 0 for all interfaces
	conn  *packet.Conn
	rc    syscall.RawConn
	// gone is set when the socket is closed on purpose, so its reader
	// stops without an error.
	gone atomic.Bool

	// The reader's state, touched by the reader goroutine only. The
	// receive function and its results live here so that a read
	// allocates nothing.
	buf    []byte
	sa     unix.RawSockaddrLinklayer
	salen  uint32
	n      int
	errno  unix.Errno
	readFn func(fd uintptr) bool
}

// openSock opens a cooked packet socket for key on interface index (0:
// all), with prog attached before it is bound so that no unfiltered
// packet is ever queued.
func openSock(key sockKey, index int32, prog []bpf.RawInstruction) (*sock, error) {
	ifi := &net.Interface{Index: int(index), Name: key.name}
	conn, err := packet.Listen(ifi, packet.Datagram, int(key.proto), &packet.Config{Filter: prog})
	if err != nil {
		return nil, openError("opening "+key.String(), unwrapOp(err))
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("rawsock: %s: %w", key, err)
	}
	growReceiveBuffer(rc)
	k := &sock{key: key, index: index, conn: conn, rc: rc, buf: make([]byte, readSize)}
	k.readFn = k.recv
	return k, nil
}

// receiveBuffer is the socket receive buffer asked for: enough to hold a
// burst of tens of thousands of knocks while the reader is descheduled on
// a busy host, where the default (about 200 KiB) drops them.
const receiveBuffer = 16 << 20

// growReceiveBuffer enlarges the socket's receive buffer: past
// net.core.rmem_max when the process may (CAP_NET_ADMIN), else up to it.
func growReceiveBuffer(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
		}
	})
}

// unwrapOp drops packet's *net.OpError, whose text adds nothing here
// ("listen packet : socket: ..."), keeping the syscall error.
func unwrapOp(err error) error {
	if op, ok := err.(*net.OpError); ok {
		return op.Err
	}
	return err
}

// recv is the syscall.RawConn read function: one recvfrom(2) into the
// socket's buffer, keeping the link-layer address for its packet type
// and protocol.
func (k *sock) recv(fd uintptr) bool {
	for {
		k.salen = unix.SizeofSockaddrLinklayer
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(&k.buf[0])), uintptr(len(k.buf)), 0,
			uintptr(unsafe.Pointer(&k.sa)), uintptr(unsafe.Pointer(&k.salen)))
		switch e {
		case 0:
			k.n, k.errno = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		k.n, k.errno = 0, e
		return true
	}
}

// packet returns the last packet read, its packet type and its protocol
// in host byte order.
func (k *sock) packet() ([]byte, uint8, uint16) {
	return k.buf[:k.n], k.sa.Pkttype, ntohs(k.sa.Protocol)
}

// ntohs turns a 16-bit field stored in network byte order into a number.
func ntohs(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// readErr returns the error of the last read, nil if it succeeded.
func (k *sock) readErr() error {
	if k.errno == 0 {
		return nil
	}
	return os.NewSyscallError("recvfrom", k.errno)
}

// close closes the socket on purpose and returns the kernel's drop count
// since it was last read.
func (k *sock) close() (drops uint64) {
	drops = k.drops()
	k.gone.Store(true)
	k.conn.Close()
	return drops
}

// drops reads (and so resets) the kernel's drop counter.
func (k *sock) drops() uint64 {
	st, err := k.conn.Stats()
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

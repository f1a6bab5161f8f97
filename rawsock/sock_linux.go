//go:build linux

package rawsock

import (
	"encoding/binary"
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// readSize is the most of a packet a reader without a ring looks at. Only
// the headers matter; the kernel truncates the rest.
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
//
// The socket is a plain blocking file descriptor, kept out of the Go
// runtime's poller on purpose: the kernel signals it for every packet,
// and under a flood those signals would keep the runtime's poller
// spinning (it was half the daemon's CPU) even while the reader is not
// waiting. The reader waits in poll(2) on its own thread instead, with an
// eventfd that wakes it to stop.
type sock struct {
	key    sockKey
	index  int32 // the interface index; 0 for all interfaces
	fd     int
	wakefd int // an eventfd: a write makes the reader look at why
	// refs counts the users of fd, wakefd and the ring: the socket until
	// it is closed, and its reader while it runs. The last one releases
	// them, so that closing never pulls them from under a reader.
	refs atomic.Int32
	// gone is set when the socket is closed on purpose, so its reader
	// stops without an error.
	gone atomic.Bool
	// ring is the receive ring; nil where the kernel refused one, and
	// the reader then uses recvfrom(2).
	ring    *ring
	ringErr error // why there is no ring

	// The ring-less reader's state, touched by the reader only.
	buf   []byte
	sa    unix.RawSockaddrLinklayer
	salen uint32
	n     int
}

// openSock opens a cooked packet socket for key on interface index (0:
// all), with prog attached and the ring set up before it is bound, so
// that no unfiltered packet is ever queued and none is lost.
func openSock(key sockKey, index int32, prog []bpf.RawInstruction) (*sock, error) {
	what := "opening " + key.String()
	// Protocol 0: the socket receives nothing until it is bound.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, openError(what, os.NewSyscallError("socket", err))
	}
	k := &sock{key: key, index: index, fd: fd, wakefd: -1}
	k.refs.Store(1)
	fail := func(err error) (*sock, error) {
		k.release()
		return nil, openError(what, err)
	}
	if err := k.setBPF(prog); err != nil {
		return fail(err)
	}
	if ringBytes > 0 {
		k.ring, k.ringErr = setupRing(fd, ringBytes)
		if errors.Is(k.ringErr, errRingStuck) {
			return fail(k.ringErr)
		}
	}
	if k.ring == nil {
		// A kernel without rings (or a sandbox that refuses them)
		// still works, at one system call per packet.
		growReceiveBuffer(fd)
		k.buf = make([]byte, readSize)
	}
	if k.wakefd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail(os.NewSyscallError("eventfd", err))
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(key.proto), Ifindex: int(index)}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(os.NewSyscallError("bind", err))
	}
	return k, nil
}

// setBPF attaches prog, replacing the program in one step on a live
// socket.
func (k *sock) setBPF(prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return errors.New("empty filter program")
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(k.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err)
	}
	return nil
}

// receiveBuffer is the socket receive buffer asked for without a ring:
// enough to hold a burst of tens of thousands of knocks while the reader
// is descheduled on a busy host, where the default (about 200 KiB) drops
// them.
const receiveBuffer = 16 << 20

// growReceiveBuffer enlarges the socket's receive buffer: past
// net.core.rmem_max when the process may (CAP_NET_ADMIN), else up to it.
func growReceiveBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
	}
}

// errWoken is wait's answer to a wake-up: the reader must look at its run
// and its socket, and wait again if they go on.
var errWoken = errors.New("woken")

// wait blocks until the socket has something to read, or wake is called.
// A pending socket error (the interface went down or away) is returned,
// and so cleared.
func (k *sock) wait() error {
	fds := []unix.PollFd{{Fd: int32(k.fd), Events: unix.POLLIN}, {Fd: int32(k.wakefd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("poll", err)
		}
		if fds[1].Revents != 0 {
			var b [8]byte
			unix.Read(k.wakefd, b[:])
			return errWoken
		}
		if fds[0].Revents&unix.POLLERR != 0 {
			n, err := unix.GetsockoptInt(k.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return os.NewSyscallError("getsockopt SO_ERROR", err)
			}
			if n != 0 {
				return unix.Errno(n)
			}
		}
		return nil
	}
}

// wake makes the socket's reader, if it waits, return from wait.
func (k *sock) wake() {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	unix.Write(k.wakefd, b[:])
}

// recv reads one packet without waiting; ok is false when there is none.
func (k *sock) recv() (ok bool, err error) {
	for {
		k.salen = unix.SizeofSockaddrLinklayer
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(k.fd),
			uintptr(unsafe.Pointer(&k.buf[0])), uintptr(len(k.buf)), unix.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&k.sa)), uintptr(unsafe.Pointer(&k.salen)))
		switch e {
		case 0:
			k.n = int(n)
			return true, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false, nil
		}
		return false, os.NewSyscallError("recvfrom", e)
	}
}

// packet returns the last packet recv read, its packet type and its
// protocol in host byte order.
func (k *sock) packet() ([]byte, uint8, uint16) {
	return k.buf[:k.n], k.sa.Pkttype, ntohs(k.sa.Protocol)
}

// ntohs turns a 16-bit field stored in network byte order into a number.
func ntohs(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// htons is ntohs's inverse (the same swap).
func htons(v uint16) uint16 { return ntohs(v) }

// close closes the socket on purpose and returns the kernel's drop count
// since it was last read. A reader still running stops at once.
func (k *sock) close() (drops uint64) {
	drops = k.drops()
	k.gone.Store(true)
	k.wake()
	k.release()
	return drops
}

// acquire takes a reference for a reader; false if the socket is gone.
func (k *sock) acquire() bool {
	for {
		n := k.refs.Load()
		if n <= 0 {
			return false
		}
		if k.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference, closing the socket with the last one.
func (k *sock) release() {
	if k.refs.Add(-1) != 0 {
		return
	}
	if k.ring != nil {
		k.ring.unmap()
	}
	unix.Close(k.fd)
	if k.wakefd >= 0 {
		unix.Close(k.wakefd)
	}
}

// drops reads (and so resets) the kernel's drop counter.
func (k *sock) drops() uint64 {
	st, err := unix.GetsockoptTpacketStats(k.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

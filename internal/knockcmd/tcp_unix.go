//go:build unix

package knockcmd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// knockTCP sends one TCP knock to ap and waits up to timeout for the
// handshake to complete or be refused. A connection that completes is
// reset at once (SO_LINGER 0), leaving nothing in TIME_WAIT.
//
// The socket is driven by hand rather than through net.Dialer to tell a
// local failure from the host's answer: connect(2) fails at once when the
// SYN cannot leave (no route, no such address), while an answer to a SYN
// that left (a reset, an ICMP "prohibited" from a firewall) arrives later
// as SO_ERROR. net.Dialer reports both the same way.
func knockTCP(ctx context.Context, ap netip.AddrPort, timeout time.Duration) (Outcome, error, error) {
	sa, family, err := sockaddr(ap)
	if err != nil {
		return 0, nil, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return 0, nil, os.NewSyscallError("socket", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return 0, nil, os.NewSyscallError("setnonblock", err)
	}
	switch err := unix.Connect(fd, sa); err {
	case nil:
		// Loopback may complete at once on some systems.
		resetClose(fd)
		return Connected, nil, nil
	case unix.EINPROGRESS, unix.EINTR:
		// The SYN is on its way.
	case unix.ECONNREFUSED:
		unix.Close(fd)
		return Rejected, os.NewSyscallError("connect", err), nil
	default:
		unix.Close(fd)
		return 0, nil, os.NewSyscallError("connect", err)
	}
	if timeout < 0 {
		unix.Close(fd)
		return Sent, nil, nil
	}

	// os.NewFile makes a non-blocking descriptor pollable, so the wait
	// goes through the runtime's poller and honours a deadline.
	f := os.NewFile(uintptr(fd), "tcp knock")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	deadline := time.Now().Add(timeout)
	if err := f.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	stop := context.AfterFunc(ctx, func() { f.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	connected := false
	var answer error
	werr := rc.Write(func(fd uintptr) bool {
		n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			answer = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := syscall.Errno(n); e {
		case 0:
			if _, err := unix.Getpeername(int(fd)); err == nil {
				connected = true
				return true
			}
			return false
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		default:
			answer = os.NewSyscallError("connect", e)
			return true
		}
	})
	switch {
	case connected:
		awaitServerClose(rc)
		rc.Control(func(fd uintptr) {
			unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		})
		return Connected, nil, nil
	case answer != nil:
		return Rejected, answer, nil
	case ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case errors.Is(werr, os.ErrDeadlineExceeded):
		return TimedOut, nil, nil
	}
	return 0, nil, werr
}

// awaitServerClose waits, within the knock's deadline, for the server to
// end a connection it accepted. knockd's listener backend counts a knock
// when it accepts the connection and resets it right after, so waiting
// for that reset makes sure the knock was counted before the next one
// leaves: a UDP knock sent just behind a TCP handshake could otherwise
// be read first. A server that keeps the connection open costs the rest
// of the deadline, never more.
func awaitServerClose(rc syscall.RawConn) {
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK)
		return err != unix.EAGAIN && err != unix.EINTR
	})
}

func resetClose(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}

func sockaddr(ap netip.AddrPort) (unix.Sockaddr, int, error) {
	a := ap.Addr()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return nil, 0, err
			}
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, unix.AF_INET6, nil
}

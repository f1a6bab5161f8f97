package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/knock-go/knock/wire"
)

// OpenError is a failure to open the socket for one knock port on one
// address. Its message names the doors, the port and the fix; Unwrap
// gives the underlying error, so errors.Is(err, syscall.EADDRINUSE) and
// errors.Is(err, os.ErrPermission) work.
type OpenError struct {
	// Doors are the doors that knock on the port; empty when unknown.
	Doors []string
	Proto wire.Proto
	Port  uint16
	// Addr is the address the socket was to be bound to.
	Addr netip.Addr
	// Err is the error from the system, usually a *net.OpError.
	Err error
}

func (e *OpenError) Error() string {
	who := describe(e.Doors, e.Proto, e.Port)
	where := fmt.Sprintf("%s on %s", who, addrString(e.Addr))
	switch {
	case errors.Is(e.Err, syscall.EADDRINUSE):
		return fmt.Sprintf("listener: %s is already in use by another program; free it, or choose another port, or use --backend raw", where)
	case errors.Is(e.Err, os.ErrPermission) && e.Port < 1024:
		return fmt.Sprintf("listener: %s: permission denied: ports below 1024 need CAP_NET_BIND_SERVICE; run `setcap cap_net_bind_service+ep %s`, or run as root, or choose a port above 1023, or use --backend raw",
			where, executable())
	case errors.Is(e.Err, os.ErrPermission):
		return fmt.Sprintf("listener: %s: permission denied (%v); check net.ipv4.ip_unprivileged_port_start and the security policy, or use --backend raw",
			where, e.Err)
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("listener: %s: %s is not an address of this host; fix the door's Target (or the interface's address), or use --backend raw, which also sees knocks to addresses the host does not own",
			where, addrString(e.Addr))
	}
	return fmt.Sprintf("listener: %s: %v", where, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

// describe returns "door openSSH: tcp port 7000" or "doors a, b: udp
// port 53".
func describe(doors []string, proto wire.Proto, port uint16) string {
	var b strings.Builder
	switch len(doors) {
	case 0:
	case 1:
		fmt.Fprintf(&b, "door %s: ", doors[0])
	default:
		fmt.Fprintf(&b, "doors %s: ", strings.Join(doors, ", "))
	}
	fmt.Fprintf(&b, "%s port %d", proto, port)
	return b.String()
}

// addrString writes IPv6 addresses in brackets, which reads better after
// "on" than a bare "::".
func addrString(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

func executable() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/path/to/knockd"
}

// noIPv6 reports whether err from opening an IPv6 socket means that the
// host has no IPv6 at all.
func noIPv6(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) ||
		errors.Is(err, syscall.EPROTONOSUPPORT) ||
		errors.Is(err, syscall.EADDRNOTAVAIL)
}

//go:build !unix

package knockcmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
)

// knockTCP sends one TCP knock to ap and waits up to timeout for the
// handshake to complete or be refused. Without the Unix socket calls, a
// local failure and an ICMP answer from the host look alike here; only a
// reset counts as the host's answer.
func knockTCP(ctx context.Context, ap netip.AddrPort, timeout time.Duration) (Outcome, error, error) {
	if timeout < 0 {
		return 0, nil, fmt.Errorf("sending a SYN without waiting is not implemented on %s", runtime.GOOS)
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", ap.String())
	switch {
	case err == nil:
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		return Connected, nil, nil
	case ctx.Err() != nil:
		return 0, nil, ctx.Err()
	case errors.Is(err, syscall.ECONNREFUSED):
		return Rejected, unwrapOpError(err), nil
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return TimedOut, nil, nil
	}
	return 0, nil, unwrapOpError(err)
}

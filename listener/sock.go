package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// A sock is one open socket.
type sock struct {
	key   key
	doors []string
	tcp   *net.TCPListener // set iff key.proto == TCP
	udp   *net.UDPConn     // set iff key.proto == UDP
	stop  chan struct{}    // closed just before the socket is
	// done is closed when the socket's own goroutine ends; nil when it
	// has none (not started yet, or served by the Linux TCP loop).
	done chan struct{}
}

// open binds the socket for b.
func (s *Source) open(b *binding) (*sock, error) {
	sk := &sock{key: b.key, doors: b.doors, stop: make(chan struct{})}
	addr := netip.AddrPortFrom(b.addr, b.port).String()
	var err error
	switch b.proto {
	case wire.TCP:
		var lc net.ListenConfig
		// A knock is one connection that is reset at once: multipath
		// TCP brings nothing but a different socket type.
		lc.SetMultipathTCP(false)
		var ln net.Listener
		ln, err = lc.Listen(context.Background(), b.network(), addr)
		if err == nil {
			sk.tcp = ln.(*net.TCPListener)
		}
	case wire.UDP:
		sk.udp, err = listenUDP(b.network(), addr)
	}
	if err != nil {
		return nil, &OpenError{Doors: b.doors, Proto: b.proto, Port: b.port, Addr: b.addr, Err: err}
	}
	return sk, nil
}

func (sk *sock) close() {
	close(sk.stop)
	if sk.tcp != nil {
		sk.tcp.Close()
	} else {
		sk.udp.Close()
	}
}

func (sk *sock) stopping() bool {
	select {
	case <-sk.stop:
		return true
	default:
		return false
	}
}

// serveUDP turns each datagram into a knock. The payload does not
// matter, so the buffer is small and a longer datagram is truncated.
func (s *Source) serveUDP(ctx context.Context, in chan<- knock, sk *sock) {
	var p pauser
	buf := make([]byte, 64)
	oob := make([]byte, oobSize)
	for {
		_, oobn, _, from, err := sk.udp.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if sk.stopping() || errors.Is(err, net.ErrClosed) || !s.pause(ctx, sk, &p, "read", err) {
				return
			}
			continue
		}
		now := time.Now()
		s.received.Add(1)
		p.ok(s, sk.key)
		dst, rx := parseOOB(oob[:oobn])
		if !dst.IsValid() {
			dst = sk.key.addr.WithZone("")
		}
		at := now.UnixNano()
		if !rx.IsZero() {
			at = rx.UnixNano()
			// Keep now's monotonic clock reading, moved back by how long
			// the datagram waited (unless the wall clock just jumped).
			if age := now.Sub(rx); age >= 0 && age < time.Minute {
				now = now.Add(-age)
			}
		}
		src := from.Addr().Unmap().WithZone("")
		s.emit(ctx, in, sk, capture.Event{Time: now, Src: src, Dst: dst.Unmap(), Port: sk.key.port, Proto: wire.UDP}, at)
	}
}

// A pauser backs off after accept or read errors (EMFILE, ENOBUFS, ...)
// so that a persistent one does not spin, and logs the first error of a
// run and the recovery rather than every error.
type pauser struct {
	n     int
	delay time.Duration
}

// pause waits after an error; it returns false when the socket or the
// source is stopping.
func (s *Source) pause(ctx context.Context, sk *sock, p *pauser, op string, err error) bool {
	t := time.NewTimer(p.failed(s, sk.key, op, err))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-sk.stop:
	case <-s.done:
	}
	return false
}

// failed counts an error, logs it if it is the first of a run, and
// returns how long to wait before trying again.
func (p *pauser) failed(s *Source, k key, op string, err error) time.Duration {
	s.errs.Add(1)
	if p.n == 0 {
		s.logf("listener: %s: %s: %v; retrying", k, op, err)
	}
	p.n++
	p.delay = min(max(5*time.Millisecond, 2*p.delay), time.Second)
	return p.delay
}

// ok ends a run of errors.
func (p *pauser) ok(s *Source, k key) {
	if p.n > 0 {
		s.logf("listener: %s: working again after %d errors", k, p.n)
		*p = pauser{}
	}
}

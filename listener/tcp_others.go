//go:build !linux

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

// tcpLoop is empty here: each TCP listener has a goroutine of its own,
// which keeps the order of knocks on different ports only as well as the
// Go scheduler does (see tcp_linux.go).
type tcpLoop struct{}

func (s *Source) runTCP() error     { return nil }
func (s *Source) closeTCP()         {}
func (s *Source) finishTCP()        {}
func (s *Source) startTCP(sk *sock) { s.goServe(sk, s.serveTCP) }
func (s *Source) stopTCP(sk *sock)  {}

// serveTCP turns each accepted connection into a knock and resets it.
func (s *Source) serveTCP(ctx context.Context, in chan<- knock, sk *sock) {
	var p pauser
	for {
		c, err := sk.tcp.AcceptTCP()
		if err != nil {
			if sk.stopping() || errors.Is(err, net.ErrClosed) || !s.pause(ctx, sk, &p, "accept", err) {
				return
			}
			continue
		}
		now := time.Now()
		src := addrOf(c.RemoteAddr())
		dst := addrOf(c.LocalAddr())
		// Linger 0 makes Close send a RST and free the socket at once,
		// instead of a FIN and TIME_WAIT for every knock.
		c.SetLinger(0)
		c.Close()
		s.accepted.Add(1)
		p.ok(s, sk.key)
		if !src.IsValid() {
			continue // the peer went away before accept could see it
		}
		if !dst.IsValid() {
			dst = sk.key.addr.WithZone("")
		}
		s.emit(ctx, in, sk, capture.Event{Time: now, Src: src, Dst: dst, Port: sk.key.port, Proto: wire.TCP, Flags: wire.SYN}, now.UnixNano())
	}
}

// addrOf returns the address of a *net.TCPAddr, unmapped and without a
// zone (the raw backend reads addresses from packet headers, which have
// none, and a zone in %IP% would break firewall commands).
func addrOf(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.Addr{}
	}
	return ta.AddrPort().Addr().Unmap().WithZone("")
}

package rawsock

import (
	"net/netip"
	"testing"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// TestLiveSources attaches a filter with source tests to real sockets:
// packets from the peer to ports whose Sources take it are reported,
// packets with spoofed sources outside them never leave the kernel (the
// port tables in Go do not look at sources, so any that passed the
// filter would be reported).
func TestLiveSources(t *testing.T) {
	if !isolated(t) {
		return
	}
	e := newLiveEnv(t)
	e.createVeth()
	spec := liveSpec(nil)
	for i := range spec.Ports {
		switch spec.Ports[i].Port {
		case portUDP:
			spec.Ports[i].Sources = []netip.Prefix{netip.PrefixFrom(e.peer4, 32), netip.PrefixFrom(e.peer6, 64).Masked()}
		case portSyn:
			spec.Ports[i].Sources = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/31")}
		}
	}
	r := startSource(t, spec)
	r.mark(t, e.udp, e.host4)
	r.mark(t, e.udp, e.host6)

	b := e.peer4.As4()
	b[3] = 99
	spoofed4 := netip.AddrFrom4(b).String()
	b6 := e.peer6.As16()
	b6[7] ^= 1 // another /64
	spoofed6 := netip.AddrFrom16(b6).String()
	h4, h6 := e.host4.String(), e.host6.String()

	e.udp(e.host4, portUDP)                                                      // reported
	e.raw(ip4(spoofed4, h4, protoUDP, 0, nil, udpHdr(1, portUDP, nil)))          // outside: dropped
	e.dial(e.host4, portSyn)                                                     // the peer is outside: dropped
	e.raw(ip4("198.18.0.1", h4, protoTCP, 0, nil, tcpHdr(2, portSyn, wire.SYN))) // inside: reported
	got := r.mark(t, e.udp, e.host4)
	sameEvents(t, "IPv4", got, []capture.Event{
		{Src: e.peer4, Dst: e.host4, Port: portUDP, Proto: wire.UDP},
		{Src: netip.MustParseAddr("198.18.0.1"), Dst: e.host4, Port: portSyn, Proto: wire.TCP, Flags: wire.SYN},
	})

	e.udp(e.host6, portUDP)                                          // reported
	e.raw(ip6(spoofed6, h6, protoUDP, nil, udpHdr(3, portUDP, nil))) // outside: dropped
	e.dial(e.host6, portSyn)                                         // no IPv6 source at all: dropped
	got = r.mark(t, e.udp, e.host6)
	sameEvents(t, "IPv6", got, []capture.Event{
		{Src: e.peer6, Dst: e.host6, Port: portUDP, Proto: wire.UDP},
	})
}

// Package wire holds the types a knock is made of on the wire: transport
// protocols, knocks (a port and its protocol) and TCP flag bits, with the
// filter a door's TCPFlags directive makes of them. It imports nothing of
// this module, so that the knock client, the decoder and the capture
// contract use them without linking the configuration parser. Its API is
// not yet stable.
package wire

import (
	"fmt"
	"strings"
)

// Proto is a transport protocol number as it appears in the IP header.
type Proto uint8

// The two protocols a knock can use.
const (
	TCP Proto = 6
	UDP Proto = 17
)

// String returns "tcp" or "udp", as knockd.conf spells them.
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// Knock is one element of a sequence: a port and its protocol.
type Knock struct {
	Port  uint16
	Proto Proto
}

// String returns the knockd.conf form "port:proto".
func (k Knock) String() string { return fmt.Sprintf("%d:%s", k.Port, k.Proto) }

// TCP header flag bits, as in the 13th byte of the TCP header.
const (
	FIN uint8 = 0x01
	SYN uint8 = 0x02
	RST uint8 = 0x04
	PSH uint8 = 0x08
	ACK uint8 = 0x10
	URG uint8 = 0x20
)

// FlagFilter is what a door's TCPFlags directive asks of a TCP packet's
// flag bits: some set, some clear. It is not itself a set of flag bits.
// The zero value accepts any TCP packet.
type FlagFilter struct {
	Set   uint8 // bits that must be set
	Unset uint8 // bits that must be clear
}

// Match reports whether a TCP packet carrying flags satisfies f.
func (f FlagFilter) Match(flags uint8) bool {
	return flags&f.Set == f.Set && flags&f.Unset == 0
}

// String returns f in the TCPFlags syntax, for example "syn,!ack".
func (f FlagFilter) String() string {
	names := []struct {
		bit  uint8
		name string
	}{{FIN, "fin"}, {SYN, "syn"}, {RST, "rst"}, {PSH, "psh"}, {ACK, "ack"}, {URG, "urg"}}
	var parts []string
	for _, n := range names {
		if f.Set&n.bit != 0 {
			parts = append(parts, n.name)
		}
	}
	for _, n := range names {
		if f.Unset&n.bit != 0 {
			parts = append(parts, "!"+n.name)
		}
	}
	return strings.Join(parts, ",")
}

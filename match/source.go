package match

import (
	"encoding/binary"
	"net/netip"
)

// srcKey is a source address as the table's key: its 16 bytes (As16) as
// two integers, without the zone, which event sources never carry.
type srcKey struct{ hi, lo uint64 }

// family returns the index of an address kind's stage-1 list: 0 for
// IPv4, 1 for the others.
func family(k addrKind) int {
	if k == kind4 {
		return 0
	}
	return 1
}

// keyOfSrc returns a's key and kind.
//
// It avoids As16: the compiler copies the array it returns with one
// 16-byte load of two 8-byte stores, which the CPU cannot forward, so the
// load waits for the stores to retire, and with them every cache miss
// before it; that would serialise the loads HandleBatch means to overlap.
func keyOfSrc(a netip.Addr) (srcKey, addrKind) {
	if a.Is4() {
		b := a.As4()
		return srcKey{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[:]))}, kind4
	}
	return keyOfSrc6(a)
}

// keyOfSrc6 is keyOfSrc for the other addresses. AppendBinary writes and
// reads back whole 8-byte words.
func keyOfSrc6(a netip.Addr) (srcKey, addrKind) {
	var buf [16]byte
	b, _ := a.WithZone("").AppendBinary(buf[:0])
	if len(b) != 16 {
		return srcKey{}, kindInvalid
	}
	return srcKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16])}, kind6
}

// addrKind tells apart the addresses that share a srcKey: an IPv4
// address and its IPv4-mapped IPv6 form, and the zero Addr and "::".
type addrKind uint8

const (
	kind6 addrKind = iota
	kind4
	kindInvalid
)

// addr rebuilds the address from its key and kind. A zone is lost, but
// event sources never report one.
func (k srcKey) addr(kind addrKind) netip.Addr {
	switch kind {
	case kind4:
		return netip.AddrFrom4([4]byte{byte(k.lo >> 24), byte(k.lo >> 16), byte(k.lo >> 8), byte(k.lo)})
	case kindInvalid:
		return netip.Addr{}
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.AddrFrom16(b)
}

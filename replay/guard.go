package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxBlock bounds a pcapng block. pcapgo allocates a packet's buffer from
// the length the file gives before reading it, so lengths from a corrupt
// file are checked here first.
const maxBlock = maxSnaplen + 1<<16

// ngGuard passes a pcapng stream through one block at a time, after
// checking that the block's length is sane and that a packet block's
// captured length fits in it: the lengths pcapgo trusts.
type ngGuard struct {
	r         io.Reader
	bigEndian bool
	buf       []byte // the rest of the current block
	off       int64
	// links are the link types of the current section's interfaces.
	links []uint32
}

func (g *ngGuard) Read(p []byte) (int, error) {
	if len(g.buf) == 0 {
		if err := g.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

func (g *ngGuard) next() error {
	var hdr [12]byte
	if _, err := io.ReadFull(g.r, hdr[:8]); err != nil {
		return err
	}
	typ := binary.BigEndian.Uint32(hdr[0:4]) // the SHB's type reads the same both ways
	n := 8
	if typ == 0x0a0d0d0a {
		if _, err := io.ReadFull(g.r, hdr[8:12]); err != nil {
			return unexpected(err)
		}
		n = 12
		switch {
		case binary.BigEndian.Uint32(hdr[8:12]) == 0x1a2b3c4d:
			g.bigEndian = true
		case binary.LittleEndian.Uint32(hdr[8:12]) == 0x1a2b3c4d:
			g.bigEndian = false
		default:
			return fmt.Errorf("pcapng: bad byte-order magic at byte %d", g.off)
		}
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if g.bigEndian {
		order = binary.BigEndian
	}
	typ = order.Uint32(hdr[0:4])
	length := order.Uint32(hdr[4:8])
	if length < uint32(n)+4 || length%4 != 0 || length > maxBlock {
		return fmt.Errorf("pcapng: block at byte %d has a bad length %d", g.off, length)
	}
	block := make([]byte, length)
	copy(block, hdr[:n])
	if _, err := io.ReadFull(g.r, block[n:]); err != nil {
		return unexpected(err)
	}
	switch typ {
	case 0x0a0d0d0a:
		g.links = g.links[:0]
	case 1: // interface description: the link type, 16 bits
		if length < 20 {
			return fmt.Errorf("pcapng: interface block at byte %d is too short", g.off)
		}
		if err := g.options(block, 16, order, idbOptions); err != nil {
			return err
		}
		g.links = append(g.links, uint32(order.Uint16(block[8:10])))
	case 5: // interface statistics
		if length < 24 {
			return fmt.Errorf("pcapng: statistics block at byte %d is too short", g.off)
		}
		if err := g.options(block, 20, order, isbOptions); err != nil {
			return err
		}
	case 6: // enhanced packet: 28 bytes of header, the data, options, 4 bytes of trailer
		if length < 32 || order.Uint32(block[20:24]) > length-32 {
			return fmt.Errorf("pcapng: packet block at byte %d: captured length past the block's end", g.off)
		}
	case 3: // simple packet: the original length, the data clipped by the snap length
		if length < 16 || order.Uint32(block[8:12]) > maxSnaplen {
			return fmt.Errorf("pcapng: simple packet block at byte %d is too long", g.off)
		}
	case 2: // obsolete packet block
		if length < 32 || order.Uint32(block[20:24]) > length-32 {
			return fmt.Errorf("pcapng: packet block at byte %d: captured length past the block's end", g.off)
		}
	}
	g.off += int64(length)
	g.buf = block
	return nil
}

// idbOptions and isbOptions are the shortest values pcapgo reads of the
// options of interface and statistics blocks (it slices them without
// checking).
var (
	idbOptions = map[uint16]int{9: 1, 11: 1, 14: 8}     // if_tsresol, if_filter, if_tsoffset
	isbOptions = map[uint16]int{2: 8, 3: 8, 4: 8, 5: 8} // isb_starttime, isb_endtime, isb_ifrecv, isb_ifdrop
)

// options checks the options of block from byte off: each within the
// block, each at least as long as minLen says, and a time stamp
// resolution pcapgo can divide by.
func (g *ngGuard) options(block []byte, off int, order binary.ByteOrder, minLen map[uint16]int) error {
	end := len(block) - 4 // the trailing length
	for off+4 <= end {
		code, n := order.Uint16(block[off:]), int(order.Uint16(block[off+2:]))
		if code == 0 { // end of options
			return nil
		}
		if off+4+n > end {
			return fmt.Errorf("pcapng: block at byte %d: option %d runs past the block's end", g.off, code)
		}
		if n < minLen[code] {
			return fmt.Errorf("pcapng: block at byte %d: option %d is too short", g.off, code)
		}
		if code == 9 && minLen[9] > 0 {
			// The resolution: 2^-e with the top bit set, else 10^-e; the
			// divisor must fit in 64 bits.
			if r := block[off+4]; r&0x80 != 0 && r&0x7f > 63 || r&0x80 == 0 && r > 19 {
				return fmt.Errorf("pcapng: block at byte %d: time stamp resolution %#x out of range", g.off, r)
			}
		}
		off += 4 + (n+3)&^3
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

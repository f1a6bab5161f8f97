//go:build linux

package rawsock

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The receive ring (PACKET_RX_RING, TPACKET_V2) shared with the kernel: it
// copies each packet the filter keeps into the next free frame and marks
// it ready; the reader takes the ready frames in order without a system
// call each, and hands each frame back by marking it free. The reader
// sleeps in poll only when the ring is empty, so under a flood it reads
// thousands of packets per wake-up, and a lone knock still wakes it at
// once (TPACKET_V3's blocks would add their retire timeout to it, and a
// kernel timer that fires while idle).
const (
	// ringFrameSize is one packet's slot: the frame header, the
	// link-layer address, and the start of the packet from its IP
	// header: the IP header and options, IPv6 extension headers, and the
	// first bytes of TCP or UDP.
	// The kernel puts a cooked packet at offset 80 of its frame
	// (TPACKET_ALIGN(TPACKET2_HDRLEN) + 16, net/packet/af_packet.c), so
	// 176 bytes of each packet are kept.
	ringFrameSize = 256
	// sllOff is where the frame's struct sockaddr_ll starts.
	sllOff = unix.SizeofTpacket2Hdr
)

// ringBytes is the size of a socket's ring: 32,768 frames, about 27 ms
// of a 1.2 million packets/s flood while the reader is off the CPU. The
// kernel allocates it when the ring is set up: 8 MiB of kernel memory per
// socket. Zero (tests) uses recvfrom(2) instead.
var ringBytes = 8 << 20

// mmap maps the ring; a variable so that a test can make it fail.
var mmap = unix.Mmap

// ring is a mapped receive ring. Only the socket's reader touches the
// frames.
type ring struct {
	mem    []byte
	frames int
	head   int // the next frame to read
}

// errRingStuck marks a ring that could neither be mapped nor taken off:
// the socket is then of no use.
var errRingStuck = errors.New("the ring could not be taken off the socket")

// setupRing switches the socket to TPACKET_V2 and maps a ring of size
// bytes.
func setupRing(fd, size int) (*ring, error) {
	page := os.Getpagesize()
	if size < page || size%page != 0 || page%ringFrameSize != 0 {
		return nil, fmt.Errorf("ring size %d does not fit page size %d", size, page)
	}
	req := unix.TpacketReq{
		Block_size: uint32(page),
		Block_nr:   uint32(size / page),
		Frame_size: ringFrameSize,
		Frame_nr:   uint32(size / ringFrameSize),
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, os.NewSyscallError("setsockopt PACKET_VERSION", err)
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, os.NewSyscallError("setsockopt PACKET_RX_RING", err)
	}
	mem, err := mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		// Take the ring off, or the kernel would keep filling it and
		// recvfrom(2) would never see a packet.
		off := unix.TpacketReq{}
		if err2 := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &off); err2 != nil {
			return nil, errors.Join(os.NewSyscallError("mmap", err), os.NewSyscallError("setsockopt PACKET_RX_RING", err2), errRingStuck)
		}
		return nil, os.NewSyscallError("mmap", err)
	}
	return &ring{mem: mem, frames: size / ringFrameSize}, nil
}

func (r *ring) hdr(i int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.mem[i*ringFrameSize]))
}

// ready reports whether the next frame holds a packet.
func (r *ring) ready() bool {
	return atomic.LoadUint32(&r.hdr(r.head).Status)&unix.TP_STATUS_USER != 0
}

// next returns the packet in the next frame, its packet type, its
// protocol (host order) and when the kernel received it (wall clock,
// nanoseconds since 1970). Call it only after ready, and release the
// frame when done with the bytes.
func (r *ring) next() ([]byte, uint8, uint16, int64) {
	off := r.head * ringFrameSize
	h := r.hdr(r.head)
	sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&r.mem[off+sllOff]))
	start := int(h.Net)
	end := start + int(h.Snaplen)
	if start < sllOff || start > ringFrameSize {
		start = ringFrameSize
	}
	end = min(max(end, start), ringFrameSize)
	at := int64(h.Sec)*1e9 + int64(h.Nsec)
	return r.mem[off+start : off+end], sll.Pkttype, ntohs(sll.Protocol), at
}

// release hands the next frame back to the kernel and moves on.
func (r *ring) release() {
	atomic.StoreUint32(&r.hdr(r.head).Status, unix.TP_STATUS_KERNEL)
	if r.head++; r.head == r.frames {
		r.head = 0
	}
}

// unmap releases the ring's memory.
func (r *ring) unmap() {
	unix.Munmap(r.mem)
	r.mem = nil
}

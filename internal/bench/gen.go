//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/knock-go/knock/internal/netlab"
)

// The flood generator writes whole Ethernet frames on the client's end of
// the veth pair through an AF_PACKET socket, many per system call
// (sendmmsg), with PACKET_QDISC_BYPASS: it goes several times faster
// than hping3 --flood and, unlike it, stops by itself after a count.

const (
	frameLen = 14 + 20 + 20 // Ethernet, IPv4, TCP without options
	batchLen = 512          // frames per sendmmsg
)

// spoofNet is where spoofed sources come from: 198.18.0.0/15, less
// 198.18.0.0/24, which holds the link's own addresses. 130,816
// addresses; a flood of a million packets repeats each about 8 times.
var spoofBase = binary.BigEndian.Uint32(netip.MustParseAddr("198.18.0.0").AsSlice())

const spoofSpan, spoofSkip = 1 << 17, 256

// txSock is a packet socket for sending raw frames on one interface.
type txSock struct {
	fd      int
	srcMAC  net.HardwareAddr
	ifindex int
}

// openTx opens, inside ns, a packet socket bound to dev for sending. It
// is bound to protocol 0, so it receives nothing.
func openTx(ns *netlab.Netns, dev string) (*txSock, error) {
	s := &txSock{fd: -1}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		s.srcMAC, s.ifindex = ifi.HardwareAddr, ifi.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening a packet socket: %w", err)
		}
		s.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("binding the packet socket to %s: %w", dev, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		return nil, err
	}
	return s, nil
}

func (s *txSock) Close() error { return unix.Close(s.fd) }

// floodPlan describes one flood.
type floodPlan struct {
	dstMAC   net.HardwareAddr
	src, dst netip.Addr // the real client and the server
	port     uint16     // the knock port the flood hits
	spoofed  int        // spoofed-source packets
	// legit lists the sequences (ports) the real client sends during
	// the flood, spread evenly over it, gap frames between knocks.
	legit    int
	sequence []uint16
	gap      int
	seed     uint64
	cpu      int // the CPU the generator's thread runs on; -1: any
}

// floodResult says what the generator did.
type floodResult struct {
	sent      int // frames handed to the kernel, legitimate ones included
	legitSent int // sequences sent whole
	start     time.Time
	took      time.Duration
	retries   int // sendmmsg calls that returned ENOBUFS or EAGAIN
}

// legitPositions returns, for a stream of total frames, the index of each
// legitimate knock and the port it knocks on.
func (p floodPlan) legitPositions(total int) map[int]uint16 {
	pos := make(map[int]uint16, p.legit*len(p.sequence))
	gap := p.gap
	if p.legit > 0 && len(p.sequence) > 1 {
		// Keep every knock inside the stream, the last sequence too.
		gap = min(gap, total/((p.legit+1)*len(p.sequence)))
	}
	for i := range p.legit {
		base := (i + 1) * total / (p.legit + 1)
		for j, port := range p.sequence {
			k := base + j*gap
			for pos[k] != 0 { // never on top of another knock
				k++
			}
			pos[k] = port
		}
	}
	return pos
}

// flood sends the plan's frames as fast as the kernel takes them, then
// returns. sent counts the frames handed over so far, for a watcher.
func (s *txSock) flood(ctx context.Context, p floodPlan, sent *atomic.Int64) (floodResult, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if p.cpu >= 0 {
		var set, old unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			return floodResult{}, err
		}
		set.Set(p.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return floodResult{}, fmt.Errorf("pinning the generator to CPU %d: %w", p.cpu, err)
		}
		defer unix.SchedSetaffinity(0, &old)
	}

	total := p.spoofed + p.legit*len(p.sequence)
	legitAt := p.legitPositions(total)
	var res floodResult

	buf := make([]byte, batchLen*frameLen)
	iov := make([]unix.Iovec, batchLen)
	msgs := make([]unix.Mmsghdr, batchLen)
	var tmpl [frameLen]byte
	copy(tmpl[0:6], p.dstMAC)
	copy(tmpl[6:12], s.srcMAC)
	binary.BigEndian.PutUint16(tmpl[12:], unix.ETH_P_IP)
	ip := tmpl[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_TCP
	copy(ip[16:20], p.dst.AsSlice())
	tcp := tmpl[34:54]
	binary.BigEndian.PutUint16(tcp[2:], p.port)
	tcp[12] = 5 << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	for i := range batchLen {
		f := buf[i*frameLen : (i+1)*frameLen]
		copy(f, tmpl[:])
		iov[i].Base = &f[0]
		iov[i].SetLen(frameLen)
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	realSrc := binary.BigEndian.Uint32(p.src.AsSlice())
	rng := p.seed | 1

	res.start = time.Now()
	for done := 0; done < total; {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n := min(batchLen, total-done)
		for i := range n {
			// xorshift64: plenty random for addresses and ports.
			rng ^= rng << 13
			rng ^= rng >> 7
			rng ^= rng << 17
			f := buf[i*frameLen : (i+1)*frameLen]
			src, port := uint32(rng>>32)%spoofSpan, p.port
			if src < spoofSkip {
				src += spoofSkip
			}
			src += spoofBase
			if lp, ok := legitAt[done+i]; ok {
				src, port = realSrc, lp
			}
			fillFrame(f, src, port, uint16(rng), uint16(rng>>16)|1024, uint32(rng>>20))
		}
		for off := 0; off < n; {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
				uintptr(unsafe.Pointer(&msgs[off])), uintptr(n-off), 0, 0, 0)
			switch e {
			case 0:
				off += int(r)
				sent.Add(int64(r))
			case unix.EINTR:
			case unix.ENOBUFS, unix.EAGAIN:
				res.retries++
				runtime.Gosched()
			default:
				return res, fmt.Errorf("sendmmsg: %w", e)
			}
		}
		done += n
	}
	res.took = time.Since(res.start)
	res.sent = total
	res.legitSent = p.legit
	return res, nil
}

// fillFrame writes the per-packet fields of a SYN frame made from the
// template and its checksums.
func fillFrame(f []byte, src uint32, dport, id, sport uint16, seq uint32) {
	ip, tcp := f[14:34], f[34:54]
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint32(ip[12:], src)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip, 0)))
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[16], tcp[17] = 0, 0
	// Pseudo-header: source, destination, protocol, TCP length.
	ps := sum16(ip[12:20], uint32(unix.IPPROTO_TCP)+20)
	binary.BigEndian.PutUint16(tcp[16:], ^fold(sum16(tcp, ps)))
}

func sum16(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// udpKnocker sends one-datagram UDP knocks from the client namespace
// through its IP stack, as the knock client does. The socket is not
// connected, so the ICMP port unreachable that answers each knock never
// comes back as an error on a later send.
type udpKnocker struct {
	c   *net.UDPConn
	dst *net.UDPAddr
}

func dialUDP(ns *netlab.Netns, src, dst netip.AddrPort) (*udpKnocker, error) {
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &udpKnocker{c: c, dst: net.UDPAddrFromAddrPort(dst)}, nil
}

// knock sends one datagram and returns the time just before the send.
func (k *udpKnocker) knock() (time.Time, error) {
	t := time.Now()
	_, err := k.c.WriteToUDP([]byte{'k'}, k.dst)
	return t, err
}

func (k *udpKnocker) Close() error { return k.c.Close() }

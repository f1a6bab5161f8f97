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
	frameLen     = 14 + 20 + 20        // Ethernet, IPv4, TCP without options
	udpFrameLen  = 14 + 20 + 8 + 1     // Ethernet, IPv4, UDP, one byte
	frame6Len    = 14 + 40 + 20        // Ethernet, IPv6, TCP without options
	maxFrameLen  = frame6Len           // the longest of the three
	batchLen     = 512                 // frames per sendmmsg
	spoof6Prefix = 0x20010db8_80000000 // spoofed IPv6 sources: 2001:db8:8000::/33
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

// floodPlan describes one flood. The flood's family is the server's
// address's: spoofed IPv4 sources come from 198.18.0.0/15 (outside
// 198.18.0.0/24, so they repeat after 130,816), spoofed IPv6 sources from
// 2001:db8:8000::/33, each one used once.
type floodPlan struct {
	dstMAC   net.HardwareAddr
	src, dst netip.Addr // the real client and the server
	port     uint16     // the knock port the flood hits
	udp      bool       // UDP datagrams instead of SYNs (IPv4 only)
	spoofed  int        // spoofed-source packets
	// legit lists the sequences (ports) the real client sends during
	// the flood, spread evenly over it, gap frames between knocks.
	legit    int
	sequence []uint16
	gap      int
	// knocks are more real knocks, by frame index, of the flood's
	// protocol and family.
	knocks map[int]knock
	rate   int // frames a second; 0: as fast as the kernel takes them
	seed   uint64
	cpu    int // the CPU the generator's thread runs on; -1: any
}

// knock is one real knock in a flood.
type knock struct {
	src  netip.Addr
	port uint16
}

// frameLen returns the length of the plan's frames.
func (p floodPlan) frameLen() int {
	switch {
	case p.dst.Is6():
		return frame6Len
	case p.udp:
		return udpFrameLen
	}
	return frameLen
}

// total returns the number of frames the plan sends.
func (p floodPlan) total() int { return p.spoofed + p.legit*len(p.sequence) + len(p.knocks) }

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

	if p.udp && p.dst.Is6() {
		return floodResult{}, fmt.Errorf("no IPv6 UDP flood")
	}
	total := p.total()
	at := map[int]knock{}
	for i, port := range p.legitPositions(total) {
		at[i] = knock{p.src, port}
	}
	for i, k := range p.knocks {
		for at[i].port != 0 {
			i++
		}
		at[i] = k
	}
	for i := range at {
		if i >= total {
			return floodResult{}, fmt.Errorf("a knock at frame %d, past the flood's %d frames", i, total)
		}
	}
	var res floodResult

	flen := p.frameLen()
	buf := make([]byte, batchLen*flen)
	iov := make([]unix.Iovec, batchLen)
	msgs := make([]unix.Mmsghdr, batchLen)
	tmpl := p.template(s.srcMAC)
	for i := range batchLen {
		f := buf[i*flen : (i+1)*flen]
		copy(f, tmpl)
		iov[i].Base = &f[0]
		iov[i].SetLen(flen)
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	rng := p.seed | 1
	// A paced flood sends about every 5 ms.
	chunk := batchLen
	if p.rate > 0 {
		chunk = max(1, min(batchLen, p.rate/200))
	}

	res.start = time.Now()
	for done := 0; done < total; {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if p.rate > 0 {
			if d := time.Until(res.start.Add(time.Duration(float64(done) / float64(p.rate) * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		n := min(chunk, total-done)
		for i := range n {
			// xorshift64: plenty random for addresses and ports.
			rng ^= rng << 13
			rng ^= rng >> 7
			rng ^= rng << 17
			f := buf[i*flen : (i+1)*flen]
			k, own := at[done+i]
			port := p.port
			if own {
				port = k.port
			}
			sport, id, seq := uint16(rng>>16)|1024, uint16(rng), uint32(rng>>20)
			if p.dst.Is6() {
				var src [16]byte
				if own {
					src = k.src.As16()
				} else {
					// Unique: a random /64 in 2001:db8:8000::/33, and
					// the frame's number.
					binary.BigEndian.PutUint64(src[:], spoof6Prefix|rng>>33)
					binary.BigEndian.PutUint64(src[8:], uint64(done+i))
				}
				fillFrame6(f, &src, port, sport, seq)
				continue
			}
			src := uint32(rng>>32) % spoofSpan
			if src < spoofSkip {
				src += spoofSkip
			}
			src += spoofBase
			if own {
				src = binary.BigEndian.Uint32(k.src.AsSlice())
			}
			if p.udp {
				fillUDP(f, src, port, id, sport)
			} else {
				fillFrame(f, src, port, id, sport, seq)
			}
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

// template returns the frame every frame of the plan starts from: the
// addresses but the source, the protocol, the destination port.
func (p floodPlan) template(srcMAC net.HardwareAddr) []byte {
	f := make([]byte, p.frameLen())
	copy(f[0:6], p.dstMAC)
	copy(f[6:12], srcMAC)
	var l4 []byte
	if p.dst.Is6() {
		binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IPV6)
		ip := f[14:54]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], 20) // payload length
		ip[6] = unix.IPPROTO_TCP
		ip[7] = 64
		copy(ip[24:40], p.dst.AsSlice())
		l4 = f[54:]
	} else {
		binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
		ip := f[14:34]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = unix.IPPROTO_TCP
		if p.udp {
			ip[9] = unix.IPPROTO_UDP
		}
		copy(ip[16:20], p.dst.AsSlice())
		l4 = f[34:]
	}
	binary.BigEndian.PutUint16(l4[2:], p.port)
	if p.udp {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4))) // checksum 0: none
		l4[8] = 'k'
		return f
	}
	l4[12] = 5 << 4
	l4[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(l4[14:], 64240)
	return f
}

// fillFrame writes the per-packet fields of a SYN frame made from the
// template and its checksums.
func fillFrame(f []byte, src uint32, dport, id, sport uint16, seq uint32) {
	ip, tcp := f[14:34], f[34:54]
	fillIP4(ip, src, id)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[16], tcp[17] = 0, 0
	// Pseudo-header: source, destination, protocol, TCP length.
	ps := sum16(ip[12:20], uint32(unix.IPPROTO_TCP)+20)
	binary.BigEndian.PutUint16(tcp[16:], ^fold(sum16(tcp, ps)))
}

// fillUDP writes the per-packet fields of a UDP frame made from the
// template and the IPv4 header's checksum. The UDP checksum stays 0 (none,
// which IPv4 allows).
func fillUDP(f []byte, src uint32, dport, id, sport uint16) {
	udp := f[34:]
	fillIP4(f[14:34], src, id)
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
}

// fillIP4 writes the source and identification of an IPv4 header, and
// its checksum.
func fillIP4(ip []byte, src uint32, id uint16) {
	binary.BigEndian.PutUint16(ip[4:], id)
	binary.BigEndian.PutUint32(ip[12:], src)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip, 0)))
}

// fillFrame6 writes the per-packet fields of an IPv6 SYN frame made from
// the template and its checksum.
func fillFrame6(f []byte, src *[16]byte, dport, sport uint16, seq uint32) {
	ip, tcp := f[14:54], f[54:74]
	copy(ip[8:24], src[:])
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[16], tcp[17] = 0, 0
	// Pseudo-header: source, destination, TCP length, next header.
	ps := sum16(ip[8:40], 20+uint32(unix.IPPROTO_TCP))
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

package replay

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/rawsock"
)

// Link types (LINKTYPE_* of the pcap and pcapng formats) that the source
// reads. Others are an error at the first packet that has one.
const (
	linkNull     = 0   // BSD loopback: a 4-byte address family, host order
	linkEthernet = 1   // Ethernet, with VLAN tags or not
	linkRaw      = 101 // raw IP: IPv4 or IPv6 from the first byte
	linkLoop     = 108 // OpenBSD loopback: a 4-byte family, network order
	linkSLL      = 113 // Linux cooked capture (tcpdump -i any)
	linkIPv4     = 228
	linkIPv6     = 229
	// linkSLL2 is Linux cooked capture v2, which gopacket's uint8
	// LinkType cannot hold: the source reads it from the file itself.
	linkSLL2 = 276
	// DLT_RAW as some systems number it in pcap files.
	linkRaw12 = 12
	linkRaw14 = 14
)

// maxSnaplen bounds the bytes of one packet, as libpcap does
// (MAXIMUM_SNAPLEN): a file that says more is garbage, and must not make
// the reader allocate gigabytes.
const maxSnaplen = 262144

// Source reads a capture file's packets and reports the knocks among
// them, decoded and judged as the raw backend does (rawsock.Filter), with
// the times the file gives. It implements capture.Source; Run ends at the
// end of the file.
type Source struct {
	path   string
	f      *os.File
	r      packetReader
	mu     sync.Mutex
	filter *rawsock.Filter
	closed bool
	ran    bool

	// Packets counts the packets read; Knocks those reported.
	packets, knocks uint64
}

var _ capture.Source = (*Source)(nil)

// packetReader is pcapgo's Reader or NgReader, and gives each packet's
// link type.
type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, uint32, error)
}

// Open opens the capture file at path for spec. The error says what is
// wrong with a file that is no pcap or pcapng capture.
func Open(path string, spec capture.Spec) (s *Source, err error) {
	var f *os.File
	defer func() {
		if p := recover(); p != nil {
			f.Close()
			s, err = nil, fmt.Errorf("replay: %s: corrupt file (%v)", path, p)
		}
	}()
	f, err = os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: cannot read the capture file: %w", err)
	}
	s = &Source{path: path, f: f, filter: rawsock.NewFilter(spec)}
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, s.fileError("too short for a pcap or pcapng header", err)
	}
	if binary.BigEndian.Uint32(magic) == 0x0a0d0d0a {
		g := &ngGuard{r: br}
		r, err := pcapgo.NewNgReader(g, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			f.Close()
			return nil, s.fileError("not a pcapng capture", err)
		}
		s.r = ngReader{r, g}
	} else {
		// The link type, whole: the low 16 bits of bytes 20-23 of the
		// header (the high ones may say how long a frame check sequence
		// is), in the order the magic number gives.
		var link uint32
		if h, err := br.Peek(24); err == nil {
			switch binary.LittleEndian.Uint32(h[0:4]) {
			case 0xa1b2c3d4, 0xa1b23c4d:
				link = binary.LittleEndian.Uint32(h[20:24])
			default:
				link = binary.BigEndian.Uint32(h[20:24])
			}
			link &= 0xffff
		}
		r, err := pcapgo.NewReader(br)
		if err != nil {
			f.Close()
			return nil, s.fileError("not a pcap or pcapng capture (write it with tcpdump -w)", err)
		}
		r.SetSnaplen(min(r.Snaplen(), maxSnaplen))
		s.r = pcapReader{r, link}
	}
	return s, nil
}

func (s *Source) fileError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("the file ends too early")
	}
	return fmt.Errorf("replay: %s: %s: %v", s.path, what, err)
}

// pcapReader gives the file's link type with each packet.
type pcapReader struct {
	r    *pcapgo.Reader
	link uint32
}

func (p pcapReader) ReadPacketData() (data []byte, ci gopacket.CaptureInfo, link uint32, err error) {
	defer func() {
		if p := recover(); p != nil {
			data, link, err = nil, 0, fmt.Errorf("pcap: corrupt file (%v)", p)
		}
	}()
	data, ci, err = p.r.ReadPacketData()
	return data, ci, p.link, err
}

// ngReader is the pcapng reader, whose packets carry their interface's
// link type (WantMixedLinkType), cut to 8 bits; the guard has it whole.
type ngReader struct {
	r *pcapgo.NgReader
	g *ngGuard
}

func (n ngReader) ReadPacketData() (data []byte, ci gopacket.CaptureInfo, link uint32, err error) {
	defer func() {
		// pcapgo trusts more of a file than the guard can check: a
		// corrupt file must end in an error, never a panic.
		if p := recover(); p != nil {
			data, link, err = nil, 0, fmt.Errorf("pcapng: corrupt file (%v)", p)
		}
	}()
	data, ci, err = n.r.ReadPacketData()
	if len(ci.AncillaryData) > 0 {
		if l, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			link = uint32(l)
		}
	}
	if i := ci.InterfaceIndex; i >= 0 && i < len(n.g.links) && uint32(uint8(n.g.links[i])) == link {
		link = n.g.links[i]
	}
	return data, ci, link, err
}

// Name returns "replay".
func (s *Source) Name() string { return "replay" }

// Update makes the source judge the packets it reads from now on for spec.
func (s *Source) Update(spec capture.Spec) error {
	f := rawsock.NewFilter(spec)
	s.mu.Lock()
	s.filter = f
	s.mu.Unlock()
	return nil
}

// Close closes the file. It is idempotent.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.f.Close()
	}
	return nil
}

// Counts returns the packets read so far and the knocks among them.
func (s *Source) Counts() (packets, knocks uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.packets, s.knocks
}

// Next returns the next knock in the file. At the end of the file it
// returns io.EOF; a file that is cut short or corrupt is another error,
// which says where. The knock is judged with the Spec of the last Update
// before the call: so a caller that takes one knock at a time, and
// updates the spec as it goes (a one-time sequence moving on), gets what
// a live capture would have reported.
func (s *Source) Next() (capture.Event, error) {
	for {
		data, ci, link, err := s.r.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return capture.Event{}, io.EOF
			}
			s.mu.Lock()
			n := s.packets
			s.mu.Unlock()
			return capture.Event{}, s.fileError(fmt.Sprintf("after packet %d", n), err)
		}
		s.mu.Lock()
		s.packets++
		n, f := s.packets, s.filter
		s.mu.Unlock()
		ip, ok, err := network(link, data)
		if err != nil {
			return capture.Event{}, fmt.Errorf("replay: %s: packet %d: %w", s.path, n, err)
		}
		if !ok {
			continue
		}
		ev, ok, _ := f.Judge(ip)
		if !ok {
			continue
		}
		ev.Time = ci.Timestamp
		s.mu.Lock()
		s.knocks++
		s.mu.Unlock()
		return ev, nil
	}
}

// Run sends the file's knocks to out, in batches of one so that an Update
// between them takes effect as it would live, and returns nil at the end
// of the file, or the error of a corrupt one. See capture.Source.
func (s *Source) Run(ctx context.Context, out chan<- *capture.Batch) error {
	s.mu.Lock()
	if s.closed || s.ran {
		s.mu.Unlock()
		return errors.New("replay: source already closed or run")
	}
	s.ran = true
	s.mu.Unlock()
	defer s.Close()
	for {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		b := &capture.Batch{Events: []capture.Event{ev}}
		select {
		case out <- b:
		case <-ctx.Done():
			return nil
		}
	}
}

// network returns the IP packet inside the link-layer frame b of link
// type link, or false for a frame that holds none (another protocol, a
// packet the host sent, one truncated before its IP header). An unknown
// link type is an error.
func network(link uint32, b []byte) ([]byte, bool, error) {
	switch link {
	case linkEthernet:
		if len(b) < 14 {
			return nil, false, nil
		}
		et, off := binary.BigEndian.Uint16(b[12:14]), 14
		// VLAN tags (802.1Q, 802.1ad, the old QinQ value).
		for i := 0; i < 4 && (et == 0x8100 || et == 0x88a8 || et == 0x9100); i++ {
			if len(b) < off+4 {
				return nil, false, nil
			}
			et, off = binary.BigEndian.Uint16(b[off+2:off+4]), off+4
		}
		return ipOf(et, b[off:])
	case linkSLL:
		// 0-1: packet type | 2-3: ARPHRD | 4-5: address length
		// 6-13: address | 14-15: protocol
		if len(b) < 16 {
			return nil, false, nil
		}
		if binary.BigEndian.Uint16(b[0:2]) != 0 { // not PACKET_HOST
			return nil, false, nil
		}
		return ipOf(binary.BigEndian.Uint16(b[14:16]), b[16:])
	case linkSLL2:
		// 0-1: protocol | 2-3: reserved | 4-7: interface index
		// 8-9: ARPHRD | 10: packet type | 11: address length
		// 12-19: address
		if len(b) < 20 {
			return nil, false, nil
		}
		if b[10] != 0 { // not PACKET_HOST
			return nil, false, nil
		}
		return ipOf(binary.BigEndian.Uint16(b[0:2]), b[20:])
	case linkRaw, linkRaw12, linkRaw14, linkIPv4, linkIPv6:
		return b, len(b) > 0, nil
	case linkNull, linkLoop:
		// The family's numbers differ between systems; the IP header
		// says which version it is.
		if len(b) < 4 {
			return nil, false, nil
		}
		return b[4:], len(b) > 4, nil
	}
	return nil, false, fmt.Errorf("link type %d is not one knockd reads (Ethernet, Linux cooked, raw IP, loopback): capture with tcpdump -i any, or on an Ethernet, loopback or tun interface", link)
}

// ipOf returns b if ethertype et is IPv4 or IPv6.
func ipOf(et uint16, b []byte) ([]byte, bool, error) {
	if et == 0x0800 || et == 0x86dd {
		return b, len(b) > 0, nil
	}
	return nil, false, nil
}

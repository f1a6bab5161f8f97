package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

var t0 = time.Date(2026, 12, 1, 22, 0, 0, 123456000, time.UTC)

// spec watches 7000/tcp (SYN only) and 9000/udp.
func spec() capture.Spec {
	d := &config.Door{Name: "d", Sequence: []wire.Knock{{Port: 7000, Proto: wire.TCP}, {Port: 9000, Proto: wire.UDP}},
		Flags: wire.FlagFilter{Set: wire.SYN}}
	return capture.NewSpec([]*config.Door{d}, nil, false)
}

// ip4 returns an IPv4 packet from src to dst with a TCP header (flags)
// or, when proto is UDP, a UDP header, to port.
func ip4(src, dst string, proto wire.Proto, port uint16, flags uint8) []byte {
	t := transport(proto, port, flags)
	b := make([]byte, 20+len(t))
	b[0] = 0x45                                        // version 4, IHL 5
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b))) // total length
	b[8], b[9] = 64, uint8(proto)                      // TTL, protocol
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], t)
	return b
}

// ip6 is ip4 for IPv6.
func ip6(src, dst string, proto wire.Proto, port uint16, flags uint8) []byte {
	t := transport(proto, port, flags)
	b := make([]byte, 40+len(t))
	b[0] = 0x60                                        // version 6
	binary.BigEndian.PutUint16(b[4:6], uint16(len(t))) // payload length
	b[6], b[7] = uint8(proto), 64                      // next header, hop limit
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[40:], t)
	return b
}

func transport(proto wire.Proto, port uint16, flags uint8) []byte {
	if proto == wire.UDP {
		u := make([]byte, 8)
		binary.BigEndian.PutUint16(u[0:2], 40000) // source port
		binary.BigEndian.PutUint16(u[2:4], port)  // destination port
		binary.BigEndian.PutUint16(u[4:6], 8)     // length
		return u
	}
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:2], 40000) // source port
	binary.BigEndian.PutUint16(h[2:4], port)  // destination port
	h[12] = 5 << 4                            // data offset
	h[13] = flags
	return h
}

// frame wraps the IP packet ip in link type link's header; outgoing marks
// a packet the host sent, where the header can say so.
func frame(link uint32, ip []byte, outgoing bool) []byte {
	et := uint16(0x0800)
	if ip[0]>>4 == 6 {
		et = 0x86dd
	}
	var pkttype uint16
	if outgoing {
		pkttype = 4 // PACKET_OUTGOING
	}
	switch link {
	case linkEthernet:
		h := make([]byte, 14)                    // destination, source MAC
		binary.BigEndian.PutUint16(h[12:14], et) // ethertype
		return append(h, ip...)
	case linkSLL:
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[0:2], pkttype) // packet type
		binary.BigEndian.PutUint16(h[2:4], 1)       // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:6], 6)       // address length
		binary.BigEndian.PutUint16(h[14:16], et)    // protocol
		return append(h, ip...)
	case linkSLL2:
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:2], et) // protocol
		binary.BigEndian.PutUint32(h[4:8], 2)  // interface index
		binary.BigEndian.PutUint16(h[8:10], 1) // ARPHRD_ETHER
		h[10], h[11] = uint8(pkttype), 6       // packet type, address length
		return append(h, ip...)
	case linkNull:
		h := make([]byte, 4)
		binary.LittleEndian.PutUint32(h, 2) // AF_INET, host order
		if et == 0x86dd {
			binary.LittleEndian.PutUint32(h, 10)
		}
		return append(h, ip...)
	case linkLoop:
		h := make([]byte, 4)
		binary.BigEndian.PutUint32(h, 2) // AF_INET, network order
		if et == 0x86dd {
			binary.BigEndian.PutUint32(h, 24)
		}
		return append(h, ip...)
	}
	return ip // raw, IPv4, IPv6
}

type pkt struct {
	at   time.Duration
	data []byte
}

// writePcap writes pkts as a pcap file of link type link.
func writePcap(t testing.TB, link uint32, pkts []pkt) []byte {
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	if err := w.WriteFileHeader(65536, layers.LinkType(uint8(link))); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(p.data), Length: len(p.data)}
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[20:24], link) // the link type whole, which gopacket's uint8 cannot hold
	return out
}

// writePcapng writes pkts as a pcapng file, with one interface per link
// type in links; packet i goes on interface i % len(links).
func writePcapng(t testing.TB, links []uint32, pkts []pkt) []byte {
	var b bytes.Buffer
	intf := pcapgo.DefaultNgInterface
	intf.LinkType = layers.LinkType(uint8(links[0]))
	w, err := pcapgo.NewNgWriterInterface(&b, intf, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links[1:] {
		intf.LinkType = layers.LinkType(uint8(l))
		if _, err := w.AddInterface(intf); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(p.data), Length: len(p.data), InterfaceIndex: i % len(links)}
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	out := b.Bytes()
	// The link types whole, in each interface description block.
	n := 0
	for off := 0; off+12 <= len(out); {
		typ, length := binary.LittleEndian.Uint32(out[off:]), int(binary.LittleEndian.Uint32(out[off+4:]))
		if typ == 1 {
			binary.LittleEndian.PutUint16(out[off+8:], uint16(links[n]))
			n++
		}
		off += length
	}
	return out
}

func writeFile(t testing.TB, data []byte) string {
	path := filepath.Join(t.TempDir(), "capture")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readAll returns the knocks of the file at path, and the error that ended
// the reading (nil at the end of the file).
func readAll(t testing.TB, path string) ([]capture.Event, error) {
	s, err := Open(path, spec())
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var evs []capture.Event
	for range 10000 {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
	t.Fatal("no end to the file")
	return nil, nil
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// Every link type, in pcap and in pcapng: the knocks come out with the
// file's times; other ports, packets without the door's flags and, where
// the link header says so, packets the host sent are left out.
func TestLinkTypes(t *testing.T) {
	t.Parallel()
	links := map[string]uint32{"ethernet": linkEthernet, "sll": linkSLL, "sll2": linkSLL2, "raw": linkRaw,
		"ipv4": linkIPv4, "ipv6": linkIPv6, "null": linkNull, "loop": linkLoop}
	for name, link := range links {
		v6 := link != linkIPv4
		v4 := link != linkIPv6
		var pkts []pkt
		var want []capture.Event
		add := func(at time.Duration, ip []byte, outgoing, knock bool, ev capture.Event) {
			pkts = append(pkts, pkt{at, frame(link, ip, outgoing)})
			if knock {
				ev.Time = t0.Add(at)
				want = append(want, ev)
			}
		}
		src4, dst4 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1")
		src6, dst6 := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1")
		if v4 {
			add(0, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN), false, true,
				capture.Event{Src: src4, Dst: dst4, Port: 7000, Proto: wire.TCP, Flags: wire.SYN})
			add(time.Millisecond, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7001, wire.SYN), false, false, capture.Event{})
			add(2*time.Millisecond, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.ACK), false, false, capture.Event{})
			sll := link == linkSLL || link == linkSLL2
			add(3*time.Millisecond, ip4("198.18.0.1", "198.18.0.2", wire.UDP, 9000, 0), true, !sll,
				capture.Event{Src: dst4, Dst: src4, Port: 9000, Proto: wire.UDP})
		}
		if v6 {
			add(time.Second, ip6("2001:db8::2", "2001:db8::1", wire.UDP, 9000, 0), false, true,
				capture.Event{Src: src6, Dst: dst6, Port: 9000, Proto: wire.UDP})
		}
		for _, format := range []string{"pcap", "pcapng"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				data := writePcap(t, link, pkts)
				if format == "pcapng" {
					data = writePcapng(t, []uint32{link}, pkts)
				}
				got, err := readAll(t, writeFile(t, data))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

// A pcapng file may mix interfaces of several link types.
func TestPcapngMixedLinkTypes(t *testing.T) {
	t.Parallel()
	links := []uint32{linkEthernet, linkSLL2, linkRaw}
	var pkts []pkt
	var want []capture.Event
	for i := range 6 {
		at := time.Duration(i) * time.Second
		pkts = append(pkts, pkt{at, frame(links[i%3], ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN), false)})
		want = append(want, capture.Event{Time: t0.Add(at), Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"),
			Port: 7000, Proto: wire.TCP, Flags: wire.SYN})
	}
	got, err := readAll(t, writeFile(t, writePcapng(t, links, pkts)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Update changes what the next packets are judged against.
func TestUpdate(t *testing.T) {
	t.Parallel()
	pkts := []pkt{{0, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN)}, {1, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7777, wire.SYN)}}
	s, err := Open(writeFile(t, writePcap(t, linkRaw, pkts)), spec())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ev, err := s.Next(); err != nil || ev.Port != 7000 {
		t.Fatalf("first knock %+v, %v", ev, err)
	}
	d := &config.Door{Name: "d", Sequence: []wire.Knock{{Port: 7777, Proto: wire.TCP}}}
	s.Update(capture.NewSpec([]*config.Door{d}, nil, false))
	if ev, err := s.Next(); err != nil || ev.Port != 7777 {
		t.Fatalf("after Update: %+v, %v", ev, err)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	if p, k := s.Counts(); p != 2 || k != 2 {
		t.Errorf("counts %d packets, %d knocks; want 2, 2", p, k)
	}
}

// Bad files end in one clear error, never a panic.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	good := writePcap(t, linkEthernet, []pkt{{0, frame(linkEthernet, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN), false)},
		{1, frame(linkEthernet, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN), false)}})
	goodNg := writePcapng(t, []uint32{linkEthernet}, []pkt{{0, frame(linkEthernet, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN), false)}})
	hugeNg := bytes.Clone(goodNg)
	// The last block is the packet's: say it is 4 GiB long.
	last := len(hugeNg) - int(binary.LittleEndian.Uint32(hugeNg[len(hugeNg)-4:]))
	binary.LittleEndian.PutUint32(hugeNg[last+4:], 0xfffffff0)
	hugeCap := bytes.Clone(goodNg)
	binary.LittleEndian.PutUint32(hugeCap[last+20:], 0x7ffffff0) // captured length
	hugePcap := bytes.Clone(good)
	binary.LittleEndian.PutUint32(hugePcap[16:20], 0xffffffff) // snap length
	binary.LittleEndian.PutUint32(hugePcap[24+8:], 0x7ffffff0) // first packet's captured length
	binary.LittleEndian.PutUint32(hugePcap[24+12:], 0x7ffffff0)
	wifi := writePcap(t, 105, []pkt{{0, []byte{1, 2, 3}}})
	tests := []struct {
		name string
		data []byte
		open bool // Open fails (else Next does)
		want string
	}{
		{"empty", nil, true, "too short for a pcap or pcapng header"},
		{"text", []byte("this is not a capture file\n"), true, "not a pcap or pcapng capture"},
		{"header cut short", good[:20], true, "ends too early"},
		{"packet cut short", good[:len(good)-10], false, "after packet 1"},
		{"pcapng cut short", goodNg[:len(goodNg)-6], false, "after packet 0"},
		{"pcapng header only", goodNg[:8], true, "not a pcapng capture"},
		{"pcapng block of 4 GiB", hugeNg, false, "bad length"},
		{"pcapng captured length past its block", hugeCap, false, "captured length past the block's end"},
		{"pcap captured length of 2 GiB", hugePcap, false, "exceeds snap length"},
		{"unknown link type", wifi, false, "link type 105 is not one knockd reads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.data)
			_, err := readAll(t, path)
			if err == nil {
				t.Fatalf("no error")
			}
			if _, openErr := Open(path, spec()); (openErr != nil) != tt.open {
				t.Errorf("Open: %v; want an error from Open: %v", openErr, tt.open)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q, want it to name the file and say %q", err, tt.want)
			}
		})
	}
}

// Run serves the knocks as batches, ends at the end of the file, and
// serves once.
func TestRun(t *testing.T) {
	t.Parallel()
	pkts := []pkt{{0, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN)}, {1, ip4("198.18.0.3", "198.18.0.1", wire.TCP, 7000, wire.SYN)}}
	s, err := Open(writeFile(t, writePcap(t, linkRaw, pkts)), spec())
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *capture.Batch, 10)
	if err := s.Run(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Errorf("%d batches, want 2", len(out))
	}
	if err := s.Run(t.Context(), out); err == nil {
		t.Error("a second Run served again")
	}
	s.Close()
}

// FuzzReplay feeds the reader any bytes, starting from valid pcap and
// pcapng files: it must end in an error or io.EOF, never panic, and never
// allocate more than a packet's bound.
func FuzzReplay(f *testing.F) {
	for _, link := range []uint32{linkEthernet, linkSLL, linkSLL2, linkRaw, linkNull} {
		pkts := []pkt{{0, frame(link, ip4("198.18.0.2", "198.18.0.1", wire.TCP, 7000, wire.SYN), false)},
			{1, frame(link, ip6("2001:db8::2", "2001:db8::1", wire.UDP, 9000, 0), false)}}
		f.Add(writePcap(f, link, pkts))
		f.Add(writePcapng(f, []uint32{link, linkRaw}, pkts))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		readAll(t, path)
	})
}

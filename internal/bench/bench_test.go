//go:build linux

package main

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

func TestFillFrame(t *testing.T) {
	f := make([]byte, frameLen)
	f[14] = 0x45
	binary.BigEndian.PutUint16(f[16:], 40)
	f[22], f[23] = 64, 6
	copy(f[30:34], serverAddr.AsSlice())
	f[46] = 5 << 4
	f[47] = 0x02
	src := binary.BigEndian.Uint32(netip.MustParseAddr("198.19.1.2").AsSlice())
	fillFrame(f, src, 7000, 0x1234, 40000, 0xdeadbeef)

	ip, tcp := f[14:34], f[34:54]
	// A header with its checksum in place sums to 0xffff.
	if got := fold(sum16(ip, 0)); got != 0xffff {
		t.Errorf("IPv4 header sums to %#x, want 0xffff", got)
	}
	if got := fold(sum16(tcp, sum16(ip[12:20], 6+20))); got != 0xffff {
		t.Errorf("TCP segment and pseudo-header sum to %#x, want 0xffff", got)
	}
	if s := netip.AddrFrom4([4]byte(ip[12:16])); s.String() != "198.19.1.2" {
		t.Errorf("source %v", s)
	}
	if p := binary.BigEndian.Uint16(tcp[2:]); p != 7000 {
		t.Errorf("destination port %d", p)
	}
}

func TestLegitPositions(t *testing.T) {
	p := floodPlan{legit: 20, sequence: []uint16{7000, 8000, 9000}, gap: 1000}
	total := 100_000 + 60
	pos := p.legitPositions(total)
	if len(pos) != 60 {
		t.Fatalf("%d positions, want 60", len(pos))
	}
	// Every knock lies inside the stream, and each sequence is in order.
	last := -1
	for i := range total + 10000 {
		port, ok := pos[i]
		if !ok {
			continue
		}
		if i >= total {
			t.Errorf("knock at %d, past the %d frames", i, total)
		}
		if port == 7000 && last >= 0 && last != 9000 {
			t.Errorf("sequence restarted at %d after port %d", i, last)
		}
		last = int(port)
	}
	// A short stream shrinks the gap instead of losing knocks.
	if n := len(p.legitPositions(200)); n != 60 {
		t.Errorf("short stream: %d positions, want 60", n)
	}
}

func TestSpoofedSources(t *testing.T) {
	// Every spoofed source lies in 198.18.0.0/15, outside the link's /24.
	bench := netip.MustParsePrefix("198.18.0.0/15")
	link := netip.MustParsePrefix("198.18.0.0/24")
	for _, r := range []uint32{0, 1, 255, 256, spoofSpan - 1} {
		src := r % spoofSpan
		if src < spoofSkip {
			src += spoofSkip
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], spoofBase+src)
		a := netip.AddrFrom4(b)
		if !bench.Contains(a) || link.Contains(a) {
			t.Errorf("spoofed source %v", a)
		}
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkHandle/sources=1         	30082302	        35.75 ns/op	  27968724 events/s	       0 B/op	       0 allocs/op
BenchmarkHandle/sources=1000000-2 	 3917023	       300.2 ns/op	   3330701 events/s	       0 B/op	       0 allocs/op
BenchmarkFlood                    	 5088933	       216.1 ns/op	   4626867 events/s	      16 B/op	       0 allocs/op
PASS`
	got := parseBench(out)
	want := []benchLine{
		{"Handle/sources=1", 35.75, 27968724, 0, 0},
		{"Handle/sources=1000000", 300.2, 3330701, 0, 0},
		{"Flood", 216.1, 4626867, 16, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 100}, {0.99, 198}, {1, 200}} {
		if got := quantile(d, c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Errorf("quantile of nothing")
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1000060: "1,000,060", -12345: "-12,345"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q, want %q", in, got, want)
		}
	}
}

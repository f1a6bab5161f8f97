//go:build linux

package main

import (
	"encoding/binary"
	"net/netip"
	"os"
	"slices"
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

// sumsToFFFF reports whether b, with its checksum in place, sums to
// 0xffff over acc, as a correct Internet checksum does.
func sumsToFFFF(b []byte, acc uint32) bool { return fold(sum16(b, acc)) == 0xffff }

func TestFillUDP(t *testing.T) {
	p := floodPlan{dst: serverAddr, port: 6000, udp: true, dstMAC: make([]byte, 6)}
	f := p.template(make([]byte, 6))
	if len(f) != udpFrameLen {
		t.Fatalf("frame of %d bytes, want %d", len(f), udpFrameLen)
	}
	src := binary.BigEndian.Uint32(netip.MustParseAddr("198.19.1.2").AsSlice())
	fillUDP(f, src, 6000, 0x1234, 40000)
	ip, udp := f[14:34], f[34:]
	if !sumsToFFFF(ip, 0) {
		t.Errorf("IPv4 header sums to %#x, want 0xffff", fold(sum16(ip, 0)))
	}
	if ip[9] != 17 || binary.BigEndian.Uint16(ip[2:]) != udpFrameLen-14 {
		t.Errorf("IPv4 header %x: want protocol 17, total length %d", ip, udpFrameLen-14)
	}
	if got := binary.BigEndian.Uint16(udp[2:]); got != 6000 {
		t.Errorf("destination port %d", got)
	}
	if got := binary.BigEndian.Uint16(udp[4:]); got != 9 {
		t.Errorf("UDP length %d, want 9", got)
	}
}

func TestFillFrame6(t *testing.T) {
	p := floodPlan{dst: serverAddr6, port: 7000, dstMAC: make([]byte, 6)}
	f := p.template(make([]byte, 6))
	if len(f) != frame6Len || binary.BigEndian.Uint16(f[12:]) != 0x86dd {
		t.Fatalf("frame of %d bytes, ethertype %#x", len(f), binary.BigEndian.Uint16(f[12:]))
	}
	src := netip.MustParseAddr("2001:db8:8000:1234::5").As16()
	fillFrame6(f, &src, 8000, 40000, 0xdeadbeef)
	ip, tcp := f[14:54], f[54:]
	if ip[0]>>4 != 6 || ip[6] != 6 || binary.BigEndian.Uint16(ip[4:]) != 20 {
		t.Errorf("IPv6 header %x", ip)
	}
	if a := netip.AddrFrom16([16]byte(ip[8:24])); a.String() != "2001:db8:8000:1234::5" {
		t.Errorf("source %v", a)
	}
	if a := netip.AddrFrom16([16]byte(ip[24:40])); a != serverAddr6 {
		t.Errorf("destination %v", a)
	}
	if !sumsToFFFF(tcp, sum16(ip[8:40], 20+6)) {
		t.Errorf("TCP segment and pseudo-header sum to %#x, want 0xffff", fold(sum16(tcp, sum16(ip[8:40], 20+6))))
	}
	if binary.BigEndian.Uint16(tcp[2:]) != 8000 || tcp[13] != 0x02 {
		t.Errorf("TCP header %x: want port 8000, SYN", tcp)
	}
}

func TestSurvivalPlan(t *testing.T) {
	o := options{surviveGaps: []int{100, 1000}, surviveKnockers: 2, surviveWarmup: 500}
	p := survivalPlan(o, &lab{})
	if !p.dst.Is6() || p.legit != 0 {
		t.Fatalf("plan %+v: want an IPv6 flood with no legitimate IPv4 sequences", p)
	}
	total := p.total()
	at := map[netip.Addr][]int{}
	for i, k := range p.knocks {
		if i >= total {
			t.Errorf("knock at %d, past the %d frames", i, total)
		}
		at[k.src] = append(at[k.src], i)
	}
	if c := at[survivalControl]; len(c) != 3 || slices.Max(c) > 2 {
		t.Errorf("control knocks at %v, want 0, 1, 2", c)
	}
	for j, gap := range []int{100, 100, 1000, 1000} {
		pos := at[survivor(j)]
		slices.Sort(pos)
		if len(pos) != 3 || pos[0] < o.surviveWarmup || pos[1]-pos[0] < gap || pos[2]-pos[1] < gap || pos[2]-pos[0] > 2*gap+10 {
			t.Errorf("knocker %d (pause %d): knocks at %v", j, gap, pos)
		}
		for n, i := range pos {
			if p.knocks[i].port != floodSequence[n] {
				t.Errorf("knocker %d: knock %d on port %d", j, n, p.knocks[i].port)
			}
		}
	}
	if len(at) != 5 {
		t.Errorf("%d knockers, want 5", len(at))
	}
}

func TestLongest(t *testing.T) {
	s := &survivalResult{gaps: []int{10, 20, 30, 40}, knockers: 2}
	for _, c := range []struct {
		opened []int
		want   int
		ok     bool
	}{
		{[]int{2, 2, 2, 2}, 40, true},
		{[]int{2, 2, 1, 2}, 20, true}, // a lucky knocker at 40 does not count
		{[]int{1, 2, 2, 2}, 0, false},
		{[]int{0, 0, 0, 0}, 0, false},
	} {
		s.opened = c.opened
		if got, ok := s.longest(); got != c.want || ok != c.ok {
			t.Errorf("longest with %v = %d, %v; want %d, %v", c.opened, got, ok, c.want, c.ok)
		}
	}
}

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("50000, 100_000,1000000")
	if err != nil || !slices.Equal(got, []int{50000, 100000, 1000000}) {
		t.Errorf("parseCounts = %v, %v", got, err)
	}
	if got, err := parseCounts(" "); err != nil || got != nil {
		t.Errorf("parseCounts of nothing = %v, %v", got, err)
	}
	for _, bad := range []string{"abc", "0", "-5", "10,5", "10,10", "1,,2"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) accepted", bad)
		}
	}
}

func TestShort(t *testing.T) {
	for in, want := range map[int]string{50000: "50k", 1000000: "1M", 1500000: "1.5M", 1234: "1,234", 999: "999"} {
		if got := short(in); got != want {
			t.Errorf("short(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestLineWatcher(t *testing.T) {
	w := newLineWatcher("storm")
	for _, chunk := range []string{
		"198.18.0.11: latency: Stage 1\n198.18.0.11: late",
		"ncy: OPEN SESAME\nlatency: running command: echo 198.18.0.11 > f\n",
		"198.19.4.5: storm: OPEN SESAME\nstorm: running command: sleep 1\n198.19.4.6: storm: OPEN SESAME\n",
	} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	first, ok := w.openedAt("198.18.0.11", "latency")
	if !ok {
		t.Fatal("no OPEN SESAME for 198.18.0.11 on latency")
	}
	// A second opening keeps the first one's time.
	for time.Now().Equal(first) {
	}
	w.Write([]byte("198.18.0.11: latency: OPEN SESAME\n"))
	if again, _ := w.openedAt("198.18.0.11", "latency"); !again.Equal(first) {
		t.Errorf("the second OPEN SESAME moved the time from %v to %v", first, again)
	}
	if _, ok := w.openedAt("198.18.0.11", "storm"); ok {
		t.Errorf("an OPEN SESAME on storm for 198.18.0.11")
	}
	if open, cmd := w.counts("storm"); open != 2 || cmd != 1 {
		t.Errorf("storm counts %d, %d; want 2, 1", open, cmd)
	}
	if open, cmd := w.counts("latency"); open != 0 || cmd != 0 {
		t.Errorf("latency is not counted, got %d, %d", open, cmd)
	}
}

func TestParseBuilds(t *testing.T) {
	bs, err := parseBuilds("old=/tmp/a, new=/tmp/b")
	if err != nil {
		t.Fatal(err)
	}
	if want := []build{{"old", "/tmp/a"}, {"new", "/tmp/b"}}; !slices.Equal(bs, want) {
		t.Errorf("got %v, want %v", bs, want)
	}
	for _, bad := range []string{"", "old", "=/tmp/a", "old=", "knockd=/usr/sbin/knockd", "a/b=/x", "x=/a,x=/b"} {
		if _, err := parseBuilds(bad); err == nil {
			t.Errorf("parseBuilds(%q): no error", bad)
		}
	}
}

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want string
	}{
		{nil, "—"},
		{[]float64{3, 1, 2}, "2.0 (1.0–3.0)"},
		{[]float64{4, 1, 2, 3}, "2.5 (1.0–4.0)"},
	} {
		if got := spread(c.xs, "%.1f"); got != c.want {
			t.Errorf("spread(%v) = %q, want %q", c.xs, got, c.want)
		}
	}
}

func TestCachegrindTotal(t *testing.T) {
	path := t.TempDir() + "/cachegrind.out"
	if err := os.WriteFile(path, []byte("desc: I1 cache:\ncmd: knockd\nevents: Ir\nfl=x.go\n1 5\nsummary: 4069840\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := cachegrindTotal(path); err != nil || n != 4069840 {
		t.Errorf("cachegrindTotal = %d, %v; want 4069840", n, err)
	}
	if err := os.WriteFile(path, []byte("events: Ir\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cachegrindTotal(path); err == nil {
		t.Error("no summary line: no error")
	}
}

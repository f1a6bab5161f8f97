package seqderive

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/wire"
)

// The README's test vector, computed by an independent implementation
// (Python's hmac and struct) from the README's description.
const vectorSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

var vectorTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // Unix 1767225600

func tcp(ports ...uint16) []wire.Knock {
	var out []wire.Knock
	for _, p := range ports {
		out = append(out, wire.Knock{Port: p, Proto: wire.TCP})
	}
	return out
}

func TestVector(t *testing.T) {
	key, err := DecodeSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	p := Defaults()
	c := Counter(vectorTime, p.Step)
	if c != 58907520 {
		t.Fatalf("Counter = %d, want 58907520", c)
	}
	for _, tc := range []struct {
		c    uint64
		p    Params
		want []wire.Knock
	}{
		{c, p, tcp(25702, 26857, 21681)},
		{c + 1, p, tcp(25778, 23396, 22155)},
		{c, Params{Length: 8, Low: 20000, High: 26999, Step: p.Step, Proto: wire.TCP}, tcp(25702, 26857, 21681, 20514, 24793, 21788, 22735, 21156)},
		// A range no larger than the sequence: every port, once.
		{c, Params{Length: 5, Low: 1000, High: 1004, Step: p.Step, Proto: wire.TCP}, tcp(1002, 1001, 1004, 1003, 1000)},
	} {
		if diff := cmp.Diff(tc.want, Sequence(key, tc.c, tc.p)); diff != "" {
			t.Errorf("Sequence(%d, %+v) (-want +got):\n%s", tc.c, tc.p, diff)
		}
	}
	// Spaces, lower case and padding, as apps show secrets, read the same.
	key2, err := DecodeSecret("jbsw y3dp ehpk 3pxp jbsw-y3dp-ehpk-3pxp====\n")
	if err != nil || string(key2) != string(key) {
		t.Errorf("DecodeSecret of the spaced form = %x, %v; want %x", key2, err, key)
	}
	udp := p
	udp.Proto = wire.UDP
	if got := Sequence(key, c, udp); got[0] != (wire.Knock{Port: 25702, Proto: wire.UDP}) {
		t.Errorf("UDP sequence = %v, want the same ports in UDP", got)
	}
}

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		step time.Duration
		want uint64
	}{
		{time.Unix(59, 0), 30 * time.Second, 1}, // RFC 6238's first vector time
		{time.Unix(1111111109, 0), 30 * time.Second, 0x23523EC},
		{time.Unix(29, 999999999), 30 * time.Second, 0},
		{time.Unix(30, 0), 30 * time.Second, 1},
		{time.Unix(-5, 0), 30 * time.Second, 0},
		{time.Unix(10, 0), 2 * time.Second, 5},
	} {
		if got := Counter(tc.t, tc.step); got != tc.want {
			t.Errorf("Counter(%v, %v) = %d, want %d", tc.t.Unix(), tc.step, got, tc.want)
		}
	}
	if got := StepStart(0x23523EC, 30*time.Second); got.Unix() != 0x23523EC*30 {
		t.Errorf("StepStart = %d", got.Unix())
	}
}

func TestDistinct(t *testing.T) {
	key := []byte("0123456789abcdef0123")
	p := Params{Length: MaxLength, Low: 40000, High: 40040, Step: 30 * time.Second, Proto: wire.TCP}
	for c := uint64(0); c < 2000; c++ {
		s := Sequence(key, c, p)
		if len(s) != p.Length {
			t.Fatalf("counter %d: %d knocks, want %d", c, len(s), p.Length)
		}
		seen := map[uint16]bool{}
		for _, k := range s {
			if k.Port < p.Low || k.Port > p.High {
				t.Fatalf("counter %d: port %d outside %d-%d", c, k.Port, p.Low, p.High)
			}
			if seen[k.Port] {
				t.Fatalf("counter %d: port %d twice in %v", c, k.Port, s)
			}
			seen[k.Port] = true
		}
	}
}

// TestNoBias draws many sequences over a range whose size does not
// divide 2^32 and checks, by a chi-squared test, that every port of the
// range is as likely as any other, in every position.
func TestNoBias(t *testing.T) {
	key := []byte("a secret of twenty b")
	// 2^32 mod 3000 is 1296: without rejection, the first 1296 ports
	// would be slightly favoured; too slightly to see here, but a
	// mapping that favours some ports more (a modulo of a 12-bit value,
	// (w>>20) % n, draws the first 1096 ports twice as often) fails
	// this test.
	const n, low = 3000, 20000
	p := Params{Length: 3, Low: low, High: low + n - 1, Step: 30 * time.Second, Proto: wire.TCP}
	const draws = 60000
	var counts [3][n]int
	for c := uint64(0); c < draws; c++ {
		for i, k := range Sequence(key, c, p) {
			counts[i][k.Port-low]++
		}
	}
	for pos := range counts {
		exp := float64(draws) / n
		chi := 0.0
		for _, o := range counts[pos] {
			d := float64(o) - exp
			chi += d * d / exp
		}
		// n-1 degrees of freedom: mean 2999, sd sqrt(2*2999) ≈ 77.
		// Six standard deviations either side: a false alarm is
		// practically impossible, a real bias is not missed.
		df := float64(n - 1)
		if math.Abs(chi-df) > 6*math.Sqrt(2*df) {
			t.Errorf("position %d: chi-squared %.0f, want %.0f ± %.0f", pos, chi, df, 6*math.Sqrt(2*df))
		}
		// Both halves of the range, and the part a plain modulo
		// would favour, get their share.
		lowPart := 0
		for _, o := range counts[pos][:1296] {
			lowPart += o
		}
		if want := float64(draws) * 1296 / n; math.Abs(float64(lowPart)-want) > 6*math.Sqrt(want) {
			t.Errorf("position %d: %d draws in the first 1296 ports, want %.0f", pos, lowPart, want)
		}
	}
}

func TestDecodeSecretErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"  \n", "empty"},
		{"JBSWY3DPEHPK3PX1", "not base32"},
		{"JBSWY3DPEHPK3PXP", "at least 16"}, // 10 bytes
	} {
		_, err := DecodeSecret(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeSecret(%q) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
	if _, err := DecodeSecret("JBSWY3DPEHPK3PXP"); !errors.Is(err, ErrShortSecret) {
		t.Errorf("short secret: %v does not wrap ErrShortSecret", err)
	}
}

func TestParse(t *testing.T) {
	if l, h, err := ParseRange(" 20000 - 26999 "); err != nil || l != 20000 || h != 26999 {
		t.Errorf("ParseRange = %d, %d, %v", l, h, err)
	}
	for _, bad := range []string{"", "20000", "0-10", "10-5", "1-65536", "a-b", "1-2-3", "-5"} {
		if _, _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) succeeded", bad)
		}
	}
	if p, err := ParseProto("UDP"); err != nil || p != wire.UDP {
		t.Errorf("ParseProto(UDP) = %v, %v", p, err)
	}
	if _, err := ParseProto("icmp"); err == nil {
		t.Error("ParseProto(icmp) succeeded")
	}
	for _, bad := range []Params{
		{Length: 0, Low: 1, High: 9, Step: 30 * time.Second, Proto: wire.TCP},
		{Length: 33, Low: 1, High: 99, Step: 30 * time.Second, Proto: wire.TCP},
		{Length: 3, Low: 1, High: 2, Step: 30 * time.Second, Proto: wire.TCP},
		{Length: 3, Low: 1, High: 9, Step: time.Second, Proto: wire.TCP},
		{Length: 3, Low: 1, High: 9, Step: 2500 * time.Millisecond, Proto: wire.TCP},
		{Length: 3, Low: 1, High: 9, Step: 30 * time.Second, Proto: 1},
	} {
		if bad.Check() == nil {
			t.Errorf("Check(%+v) = nil", bad)
		}
		if Sequence([]byte("0123456789abcdef"), 1, bad) != nil {
			t.Errorf("Sequence(%+v) is not nil", bad)
		}
	}
	if err := Defaults().Check(); err != nil {
		t.Errorf("Defaults: %v", err)
	}
}

func BenchmarkSequence(b *testing.B) {
	key := []byte("0123456789abcdef0123")
	p := Defaults()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Sequence(key, uint64(i), p)
	}
}

package seqderive

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/knock-go/knock/wire"
)

// Defaults of a time-derived door, for the door keys and the client's
// flags alike.
const (
	// DefaultLength is Sequence_Length's default: three knocks.
	DefaultLength = 3
	// DefaultLow and DefaultHigh bound Sequence_Ports by default:
	// 20000-26999 lies above the ports of common services below 20000
	// (databases, 8000-9999 web servers and proxies, 11211 memcached),
	// below MongoDB's 27017 and the Kubernetes NodePort range
	// (30000-32767), and below Linux's ephemeral ports (32768-60999),
	// which outgoing connections take as their local ports.
	DefaultLow  = 20000
	DefaultHigh = 26999
	// DefaultStep is Sequence_Step's default, RFC 6238's 30 seconds.
	DefaultStep = 30 * time.Second
	// MinStep is the shortest step allowed: shorter steps leave no time
	// to send a sequence between two steps.
	MinStep = 2 * time.Second
	// MaxLength is the longest sequence, as for Sequence.
	MaxLength = 32
	// MinSecret is the shortest secret, in bytes: RFC 4226 asks for at
	// least 128 bits.
	MinSecret = 16
	// Window is how many steps either side of the current one are
	// accepted: the previous, the current and the next.
	Window = 1
)

// Params are what a door derives its sequences with, besides its secret.
// The zero value is not valid; Defaults returns the defaults.
type Params struct {
	// Length is the number of knocks, 1 to MaxLength.
	Length int
	// Low and High bound the ports, both included; the range holds at
	// least Length ports.
	Low, High uint16
	// Step is the length of a step, a whole number of seconds of at
	// least MinStep.
	Step time.Duration
	// Proto is the protocol of every knock.
	Proto wire.Proto
}

// Defaults returns the default Params.
func Defaults() Params {
	return Params{Length: DefaultLength, Low: DefaultLow, High: DefaultHigh, Step: DefaultStep, Proto: wire.TCP}
}

// Check says what is wrong with p, or returns nil.
func (p Params) Check() error {
	switch {
	case p.Length < 1 || p.Length > MaxLength:
		return fmt.Errorf("a sequence has 1 to %d knocks, not %d", MaxLength, p.Length)
	case p.Low == 0 || p.High < p.Low:
		return fmt.Errorf("port range %d-%d is empty or starts at 0: give LOW-HIGH with 1 <= LOW <= HIGH <= 65535", p.Low, p.High)
	case int(p.High)-int(p.Low)+1 < p.Length:
		return fmt.Errorf("port range %d-%d holds fewer than the %d distinct ports a sequence needs", p.Low, p.High, p.Length)
	case p.Step < MinStep || p.Step%time.Second != 0:
		return fmt.Errorf("a step is a whole number of seconds, at least %d, not %v", int(MinStep/time.Second), p.Step)
	case p.Proto != wire.TCP && p.Proto != wire.UDP:
		return fmt.Errorf("protocol %v is neither tcp nor udp", p.Proto)
	}
	return nil
}

// ParseRange parses a port range "LOW-HIGH".
func ParseRange(v string) (low, high uint16, err error) {
	if l, h, ok := strings.Cut(v, "-"); ok {
		n1, err1 := parsePort(strings.TrimSpace(l))
		n2, err2 := parsePort(strings.TrimSpace(h))
		if err1 == nil && err2 == nil && n1 <= n2 {
			return uint16(n1), uint16(n2), nil
		}
	}
	return 0, 0, fmt.Errorf("%q is not a port range: write LOW-HIGH with 1 <= LOW <= HIGH <= 65535, for example %d-%d", v, DefaultLow, DefaultHigh)
}

func parsePort(s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" || len(s) > 5 {
		return 0, errors.New("not a port")
	}
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, errors.New("not a port")
	}
	return n, nil
}

// ParseProto parses "tcp" or "udp", in any case.
func ParseProto(v string) (wire.Proto, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "tcp":
		return wire.TCP, nil
	case "udp":
		return wire.UDP, nil
	}
	return 0, fmt.Errorf("%q is not a protocol: write tcp or udp", v)
}

// ErrShortSecret is wrapped by DecodeSecret's error for a secret shorter
// than MinSecret bytes.
var ErrShortSecret = errors.New("secret too short")

// DecodeSecret decodes a secret written in base32 (RFC 4648), as
// authenticator apps and otpauth:// URIs write it: letters in either
// case, digits 2 to 7, with white space, hyphens and '=' padding
// ignored. It must decode to at least MinSecret bytes.
func DecodeSecret(text string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '-' || r == '=':
			return -1
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, text)
	if clean == "" {
		return nil, errors.New("the secret is empty: write it in base32, for example the output of head -c 20 /dev/urandom | base32")
	}
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("the secret is not base32 (letters A-Z and digits 2-7): %v", err)
	}
	if len(key) < MinSecret {
		return nil, fmt.Errorf("%w: it decodes to %d bytes, and at least %d are needed (write at least %d base32 characters, for example the output of head -c 20 /dev/urandom | base32)",
			ErrShortSecret, len(key), MinSecret, (MinSecret*8+4)/5)
	}
	return key, nil
}

// Counter returns the step counter of t: the Unix time in seconds
// divided by step, rounded down, as RFC 6238 counts it. Times before
// 1970 give 0.
func Counter(t time.Time, step time.Duration) uint64 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint64(s) / uint64(step/time.Second)
}

// StepStart returns when step counter c begins.
func StepStart(c uint64, step time.Duration) time.Time {
	return time.Unix(int64(c*uint64(step/time.Second)), 0)
}

// Sequence returns the sequence of step counter c under key with p:
// p.Length distinct ports of p.Low-p.High, each with p.Proto.
//
// The ports are drawn from a stream of 32-bit words: block j (j = 0, 1,
// ...) is HMAC-SHA256(key, counter || j), with the counter as 8 bytes
// and j as 4 bytes, both big-endian, and each block gives 8 words, read
// as big-endian uint32 in order. With n = High-Low+1 ports in the range,
// a word w below 2^32 - (2^32 mod n) gives the port Low + w mod n, and
// a word at or above it is skipped, so that every port is equally
// likely; a port already drawn is skipped too. The first Length ports
// drawn are the sequence, in the order drawn.
//
// Sequence returns nil when p is not valid (see Check).
func Sequence(key []byte, c uint64, p Params) []wire.Knock {
	if p.Check() != nil {
		return nil
	}
	n := uint64(p.High) - uint64(p.Low) + 1
	limit := (1 << 32) - (1<<32)%n
	out := make([]wire.Knock, 0, p.Length)
	var msg [12]byte
	binary.BigEndian.PutUint64(msg[:8], c)
	mac := hmac.New(sha256.New, key)
	var sum []byte
	for j := uint32(0); len(out) < p.Length; j++ {
		binary.BigEndian.PutUint32(msg[8:], j)
		mac.Reset()
		mac.Write(msg[:])
		sum = mac.Sum(sum[:0])
		for i := 0; i+4 <= len(sum) && len(out) < p.Length; i += 4 {
			w := uint64(binary.BigEndian.Uint32(sum[i:]))
			if w >= limit {
				continue
			}
			k := wire.Knock{Port: p.Low + uint16(w%n), Proto: p.Proto}
			if !contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

func contains(ks []wire.Knock, k wire.Knock) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

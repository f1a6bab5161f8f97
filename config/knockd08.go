package config

import (
	"fmt"
	"math"
	"strings"

	"github.com/knock-go/knock/wire"
)

// What knockd 0.8 makes of input that this parser rejects, so that an
// error can tell an administrator what the file did under 0.8 before the
// swap. Each reading follows knockd.c of 0.8 (parseconfig and
// parse_port_sequence), and the tests compare it with Debian's knockd -D
// where it is installed.

// with08 appends "; knockd 0.8 would have ..." to err. It returns err
// unchanged when err is nil or what08 is empty (0.8 rejects the input too).
func with08(err error, what08 string) error {
	if err == nil || what08 == "" {
		return err
	}
	return fmt.Errorf("%w; knockd 0.8 would have %s", err, what08)
}

// atoi08 returns what C's atoi makes of s in glibc, (int)strtol(s, NULL,
// 10): leading white space and one sign are skipped, the digits that
// follow are read and the rest is ignored (no digit gives 0); strtol
// saturates at the range of a long, and the cast keeps the low 32 bits.
func atoi08(s string) int32 {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var n uint64
	over := false
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			over = true
			continue
		}
		n = n*10 + d
	}
	var v int64
	switch {
	case !neg && (over || n > math.MaxInt64):
		v = math.MaxInt64
	case neg && (over || n > 1<<63):
		v = math.MinInt64
	case neg:
		v = -int64(n) // 1<<63 wraps to math.MinInt64, as it should
	default:
		v = int64(n)
	}
	return int32(uint32(uint64(v)))
}

// isCSpace reports whether C's isspace holds for b in the C locale.
func isCSpace(b byte) bool {
	return b == ' ' || '\t' <= b && b <= '\r'
}

// asciiUpper upper-cases s as C's toupper does in the C locale: ASCII
// letters only.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// cTrim trims what knockd's trim() does: C white space at both ends.
func cTrim(s string) string {
	i, j := 0, len(s)
	for i < j && isCSpace(s[i]) {
		i++
	}
	for j > i && isCSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// sequence08 returns how knockd 0.8 reads the Sequence value s, in the
// port:proto form of its -D output ("7000:tcp,0:tcp"), or ok false when
// 0.8 rejects it too. Each comma-separated item is split at ":"; the part
// before is read with atoi and cast to an unsigned short (only values
// above 65535 are refused), the part after (up to a second ":") must be
// tcp or udp in any case.
func sequence08(s string) (reading string, ok bool) {
	items := strings.Split(s, ",")
	if len(items) > MaxSequence {
		return "", false
	}
	knocks := make([]string, len(items))
	for i, item := range items {
		port, rest, hasProto := strings.Cut(item, ":")
		n := atoi08(port)
		if n > 65535 {
			return "", false
		}
		proto := "tcp"
		if hasProto {
			p, _, _ := strings.Cut(rest, ":")
			switch asciiUpper(cTrim(p)) {
			case "TCP":
			case "UDP":
				proto = "udp"
			default:
				return "", false
			}
		}
		knocks[i] = fmt.Sprintf("%d:%s", uint16(n), proto)
	}
	return strings.Join(knocks, ","), true
}

// sequenceAs08 says, for an error about the Sequence value s, how knockd
// 0.8 would have read it; empty when 0.8 rejects it too.
func sequenceAs08(s string) string {
	r, ok := sequence08(s)
	if !ok {
		return ""
	}
	return "read it as " + r
}

// seconds08 says what knockd 0.8 would have done with the timeout value
// v of a door: it reads it with atoi. For Seq_Timeout (seq true) a value
// of 0 or less times out every attempt at its second knock; for
// Cmd_Timeout a negative value becomes an unsigned sleep(3) of about 136
// years before the stop command.
func seconds08(v string, seq bool) string {
	n := atoi08(v)
	switch {
	case seq && n <= 0:
		return fmt.Sprintf("read it as %d seconds, which times out every attempt at its second knock: only a one-knock sequence would ever open", n)
	case !seq && n < 0:
		years := float64(uint32(n)) / (365.25 * 24 * 3600)
		return fmt.Sprintf("read it as %d seconds and waited %.0f years before running the stop command", n, years)
	}
	return fmt.Sprintf("read it as %d seconds", n)
}

// emptyValue08 says what knockd 0.8 would have done with "key =" and
// nothing after it, by key id; empty where 0.8 rejects it too.
func emptyValue08(id string) string {
	switch id {
	case "logfile":
		return "written no log file"
	case "pidfile":
		return `failed to write a pid file with -d ("could not create pid file")`
	case "interface":
		return "listened on eth0, or on -i"
	case "sequence":
		return sequenceAs08("")
	case "seq_timeout":
		return seconds08("", true)
	case "cmd_timeout":
		return seconds08("", false)
	case "start_command":
		return "run no command"
	case "start_command_6":
		return "run no command for IPv6 knockers (and not fallen back to Start_Command)"
	case "stop_command":
		return `logged "command timeout" after Cmd_Timeout and run an empty command`
	case "stop_command_6":
		return `logged "command timeout" for IPv6 knockers and run an empty command (not Stop_Command)`
	}
	return ""
}

// flags08 returns the TCPFlags that knockd 0.8 ends up with when the
// line v follows lines that gave prev: each item sets its flag's state,
// the last mention of a flag winning, within a line and across lines.
// ok is false when 0.8 rejects v (an unknown or space-padded flag, an
// empty item).
func flags08(prev wire.FlagFilter, v string) (f wire.FlagFilter, ok bool) {
	f = prev
	for _, item := range strings.Split(v, ",") {
		name, exclude := strings.CutPrefix(asciiUpper(item), "!")
		var bit uint8
		for n, b := range flagNames {
			if strings.ToUpper(n) == name {
				bit = b
			}
		}
		if bit == 0 {
			return wire.FlagFilter{}, false
		}
		if exclude {
			f.Set &^= bit
			f.Unset |= bit
		} else {
			f.Unset &^= bit
			f.Set |= bit
		}
	}
	return f, true
}

// flagsAs08 says, for a TCPFlags line v that asks for a flag both set and
// clear, what knockd 0.8 would have kept.
func flagsAs08(prev wire.FlagFilter, v string) string {
	f, ok := flags08(prev, v)
	if !ok {
		return ""
	}
	return "kept the last mention of each flag: TCPFlags = " + f.String()
}

package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/knock-go/knock/wire"
)

// ParseSequence parses a Sequence value, port[:tcp|udp][,port[:tcp|udp]...].
// A knock without a protocol is TCP; the protocol is case-insensitive and
// spaces around items are ignored. Where knockd 0.8 silently read junk as
// port 0 or dropped it ("abc", a trailing comma, "7000 8000"), this returns
// an error that says what is wrong and what would be right, and how
// knockd 0.8 would have read it.
func ParseSequence(s string) ([]wire.Knock, error) {
	seq, err := parseSequence(s)
	if err != nil {
		return nil, with08(err, sequenceAs08(cTrim(s)))
	}
	return seq, nil
}

func parseSequence(s string) ([]wire.Knock, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty sequence: give at least one port, for example 7000,8000:udp,9000")
	}
	items := strings.Split(s, ",")
	if len(items) > MaxSequence {
		return nil, fmt.Errorf("sequence has %d ports: at most %d are allowed", len(items), MaxSequence)
	}
	seq := make([]wire.Knock, 0, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("empty entry %d in %q: remove the extra comma", i+1, strings.TrimSpace(s))
		}
		k, err := parseKnock(item)
		if err != nil {
			return nil, err
		}
		seq = append(seq, k)
	}
	return seq, nil
}

// parseKnock parses one "port[:proto]" item, already trimmed.
func parseKnock(item string) (wire.Knock, error) {
	port, proto, hasProto := strings.Cut(item, ":")
	port = strings.TrimSpace(port)
	k := wire.Knock{Proto: wire.TCP}
	if hasProto {
		switch p := strings.TrimSpace(proto); {
		case strings.EqualFold(p, "tcp"):
		case strings.EqualFold(p, "udp"):
			k.Proto = wire.UDP
		default:
			return wire.Knock{}, fmt.Errorf("unknown protocol %q in %q: say tcp or udp", p, item)
		}
	}
	if port == "" || strings.Trim(port, "0123456789") != "" {
		msg := fmt.Sprintf("%q is not a port number", port)
		switch {
		case strings.ContainsAny(port, "#;"):
			msg += " (a comment must be on a line of its own)"
		case strings.ContainsAny(port, " \t"):
			msg += " (separate ports with commas: 7000,8000)"
		default:
			msg += " (write a number from 1 to 65535, optionally followed by :tcp or :udp)"
		}
		return wire.Knock{}, errors.New(msg)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return wire.Knock{}, fmt.Errorf("port %s is outside 1-65535", port)
	}
	k.Port = uint16(n)
	return k, nil
}

// flagNames maps the TCPFlags names, in lower case, to their bits.
var flagNames = map[string]uint8{
	"fin": wire.FIN, "syn": wire.SYN, "rst": wire.RST, "psh": wire.PSH, "ack": wire.ACK, "urg": wire.URG,
}

// ParseFlags parses a TCPFlags value such as "syn,!ack": flag names among
// fin, syn, rst, psh, ack and urg, case-insensitive, separated by commas
// without spaces; a leading "!" means the flag must be clear. knockd 0.8
// rejects a space-padded flag ("syn, ack") too, so this does the same,
// with a message that says how to fix it.
func ParseFlags(s string) (wire.FlagFilter, error) {
	if strings.TrimSpace(s) == "" {
		return wire.FlagFilter{}, errors.New("no flags: give a list such as syn or syn,!ack")
	}
	items := strings.Split(s, ",")
	var f wire.FlagFilter
	for i, item := range items {
		trimmed := strings.TrimSpace(item)
		if trimmed == "" {
			return wire.FlagFilter{}, fmt.Errorf("empty entry %d in %q: remove the extra comma", i+1, s)
		}
		if trimmed != item || strings.ContainsAny(trimmed, " \t") {
			fixed := make([]string, len(items))
			for j, it := range items {
				fixed[j] = strings.Join(strings.Fields(it), "")
			}
			return wire.FlagFilter{}, fmt.Errorf("flag %q has a space: remove it (write %s)", item, strings.Join(fixed, ","))
		}
		name, exclude := strings.CutPrefix(trimmed, "!")
		bit, ok := flagNames[strings.ToLower(name)]
		if !ok {
			return wire.FlagFilter{}, fmt.Errorf("unknown flag %q: use fin, syn, rst, psh, ack or urg, with ! before a flag that must be clear", trimmed)
		}
		if exclude {
			f.Unset |= bit
		} else {
			f.Set |= bit
		}
	}
	if err := checkFlags(f); err != nil {
		return wire.FlagFilter{}, err
	}
	return f, nil
}

// checkFlags reports a flag that is both required and excluded, which no
// packet could satisfy.
func checkFlags(f wire.FlagFilter) error {
	if both := f.Set & f.Unset; both != 0 {
		name, _, _ := strings.Cut(wire.FlagFilter{Set: both}.String(), ",")
		return fmt.Errorf("%s is both required and excluded (%s and !%s): no packet could match, keep one of the two", name, name, name)
	}
	return nil
}

package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/wire"
)

func TestParseSequence(t *testing.T) {
	tests := []struct {
		in   string
		want []wire.Knock
	}{
		{"7000", seq(7000)},
		{"7000,8000,9000", seq(7000, 8000, 9000)},
		{"2222:udp,3333:tcp,4444:udp", seq(-2222, 3333, -4444)},
		{"1:UDP,65535:Tcp,2:uDp", seq(-1, 65535, -2)},
		{" 7000 , 8000 :udp,\t9000: udp ", seq(7000, -8000, -9000)},
		{"07000", seq(7000)},
		{"7000,7000", seq(7000, 7000)},
		{strings.Repeat("1,", 31) + "2", repeatKnock(wire.Knock{Port: 1, Proto: wire.TCP}, 31, wire.Knock{Port: 2, Proto: wire.TCP})},
	}
	for _, tt := range tests {
		got, err := ParseSequence(tt.in)
		if err != nil {
			t.Errorf("ParseSequence(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseSequence(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func repeatKnock(k wire.Knock, n int, last wire.Knock) []wire.Knock {
	var s []wire.Knock
	for range n {
		s = append(s, k)
	}
	return append(s, last)
}

func TestParseSequenceErrors(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", "empty sequence: give at least one port"},
		{"   ", "empty sequence"},
		{"abc", `"abc" is not a port number (write a number from 1 to 65535`},
		{"7000,abc", `"abc" is not a port number`},
		{"-7000", `"-7000" is not a port number`},
		{"+7000", `"+7000" is not a port number`},
		{"0x1b58", `"0x1b58" is not a port number`},
		{"7000 8000", `"7000 8000" is not a port number (separate ports with commas: 7000,8000)`},
		{"7000;8000", `"7000;8000" is not a port number (a comment must be on a line of its own)`},
		{"0", "port 0 is outside 1-65535"},
		{"000", "port 000 is outside 1-65535"},
		{"65536", "port 65536 is outside 1-65535"},
		{"99999999999999999999999", "port 99999999999999999999999 is outside 1-65535"},
		{"7000,", `empty entry 2 in "7000,": remove the extra comma`},
		{",7000", `empty entry 1 in ",7000"`},
		{"7000,,8000", `empty entry 2 in "7000,,8000"`},
		{"7000:icmp", `unknown protocol "icmp" in "7000:icmp": say tcp or udp`},
		{"7000:", `unknown protocol "" in "7000:": say tcp or udp`},
		{"7000:udp:tcp", `unknown protocol "udp:tcp"`},
		{":udp", `"" is not a port number`},
		{strings.Repeat("1,", 32) + "1", "sequence has 33 ports: at most 32 are allowed"},
	}
	for _, tt := range tests {
		got, err := ParseSequence(tt.in)
		if err == nil {
			t.Errorf("ParseSequence(%q) = %v, want an error containing %q", tt.in, got, tt.msg)
			continue
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseSequence(%q) error %q does not contain %q", tt.in, err, tt.msg)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		in   string
		want wire.FlagFilter
	}{
		{"syn", wire.FlagFilter{Set: wire.SYN}},
		{"SYN", wire.FlagFilter{Set: wire.SYN}},
		{"syn,ack,urg", wire.FlagFilter{Set: wire.SYN | wire.ACK | wire.URG}},
		{"syn,!ack", wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}},
		{"fin,syn,rst,psh,ack,urg", wire.FlagFilter{Set: wire.FIN | wire.SYN | wire.RST | wire.PSH | wire.ACK | wire.URG}},
		{"!Fin,!RST", wire.FlagFilter{Unset: wire.FIN | wire.RST}},
		{"syn,syn", wire.FlagFilter{Set: wire.SYN}},
	}
	for _, tt := range tests {
		got, err := ParseFlags(tt.in)
		if err != nil {
			t.Errorf("ParseFlags(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseFlags(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		// String gives back an equivalent list.
		if again, err := ParseFlags(got.String()); err != nil || again != got {
			t.Errorf("ParseFlags(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", "no flags: give a list such as syn or syn,!ack"},
		{"foo", `unknown flag "foo": use fin, syn, rst, psh, ack or urg`},
		{"syn,fo", `unknown flag "fo"`},
		{"!!syn", `unknown flag "!!syn"`},
		{"syn, ack", `flag " ack" has a space: remove it (write syn,ack)`},
		{"syn ,ack", `flag "syn " has a space: remove it (write syn,ack)`},
		{" syn", `flag " syn" has a space: remove it (write syn)`},
		{"! syn", `flag "! syn" has a space: remove it (write !syn)`},
		{"syn ack", `flag "syn ack" has a space`},
		{"syn,", `empty entry 2 in "syn,": remove the extra comma`},
		{"syn,!syn", "syn is both required and excluded (syn and !syn): no packet could match"},
		{"!ack,ack,!syn,syn", "syn is both required and excluded"},
	}
	for _, tt := range tests {
		got, err := ParseFlags(tt.in)
		if err == nil {
			t.Errorf("ParseFlags(%q) = %+v, want an error containing %q", tt.in, got, tt.msg)
			continue
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseFlags(%q) error %q does not contain %q", tt.in, err, tt.msg)
		}
	}
}

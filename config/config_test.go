package config

import (
	"net/netip"
	"testing"

	"github.com/knock-go/knock/wire"
)

func TestFlagsMatch(t *testing.T) {
	tests := []struct {
		f     wire.FlagFilter
		flags uint8
		want  bool
	}{
		{wire.FlagFilter{}, 0, true},
		{wire.FlagFilter{}, wire.SYN | wire.ACK, true},
		{wire.FlagFilter{Set: wire.SYN}, wire.SYN, true},
		{wire.FlagFilter{Set: wire.SYN}, wire.SYN | wire.ACK, true},
		{wire.FlagFilter{Set: wire.SYN}, wire.ACK, false},
		{wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}, wire.SYN, true},
		{wire.FlagFilter{Set: wire.SYN, Unset: wire.ACK}, wire.SYN | wire.ACK, false},
		{wire.FlagFilter{Set: wire.SYN | wire.ACK}, wire.SYN, false},
	}
	for _, tt := range tests {
		if got := tt.f.Match(tt.flags); got != tt.want {
			t.Errorf("%+v.Match(%#x) = %v, want %v", tt.f, tt.flags, got, tt.want)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{wire.TCP.String(), "tcp"},
		{wire.UDP.String(), "udp"},
		{wire.Proto(1).String(), "proto(1)"},
		{wire.Knock{Port: 7000, Proto: wire.UDP}.String(), "7000:udp"},
		{wire.FlagFilter{Set: wire.SYN | wire.ACK, Unset: wire.FIN}.String(), "syn,ack,!fin"},
		{wire.FlagFilter{}.String(), ""},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestDoorCommands(t *testing.T) {
	d := &Door{StartCommand: "open %IP% %IP%", StopCommand: "close %IP%"}
	d6 := &Door{StartCommand: "open %IP%", StopCommand: "close %IP%", StartCommand6: "open6 %IP%"}
	tests := []struct {
		d           *Door
		src         string
		start, stop string
	}{
		{d, "192.0.2.1", "open 192.0.2.1 192.0.2.1", "close 192.0.2.1"},
		{d, "2001:db8::1", "open 2001:db8::1 2001:db8::1", "close 2001:db8::1"},
		{d6, "2001:db8::1", "open6 2001:db8::1", "close 2001:db8::1"},
		{d6, "::ffff:192.0.2.1", "open 192.0.2.1", "close 192.0.2.1"},
		{d6, "192.0.2.1", "open 192.0.2.1", "close 192.0.2.1"},
	}
	for _, tt := range tests {
		start, stop := tt.d.Commands(netip.MustParseAddr(tt.src))
		if start != tt.start || stop != tt.stop {
			t.Errorf("Commands(%s) = %q, %q; want %q, %q", tt.src, start, stop, tt.start, tt.stop)
		}
	}
}

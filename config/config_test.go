package config

import (
	"net/netip"
	"testing"
)

func TestFlagsMatch(t *testing.T) {
	tests := []struct {
		f     Flags
		flags uint8
		want  bool
	}{
		{Flags{}, 0, true},
		{Flags{}, SYN | ACK, true},
		{Flags{Set: SYN}, SYN, true},
		{Flags{Set: SYN}, SYN | ACK, true},
		{Flags{Set: SYN}, ACK, false},
		{Flags{Set: SYN, Unset: ACK}, SYN, true},
		{Flags{Set: SYN, Unset: ACK}, SYN | ACK, false},
		{Flags{Set: SYN | ACK}, SYN, false},
	}
	for _, tt := range tests {
		if got := tt.f.Match(tt.flags); got != tt.want {
			t.Errorf("%+v.Match(%#x) = %v, want %v", tt.f, tt.flags, got, tt.want)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{TCP.String(), "tcp"},
		{UDP.String(), "udp"},
		{Proto(1).String(), "proto(1)"},
		{Knock{Port: 7000, Proto: UDP}.String(), "7000:udp"},
		{Flags{Set: SYN | ACK, Unset: FIN}.String(), "syn,ack,!fin"},
		{Flags{}.String(), ""},
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

package rawsock

import (
	"testing"

	"golang.org/x/net/bpf"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// FuzzDecode checks that Decode never panics, that what it reports is
// well formed, and that the BPF program keeps every packet Decode
// accepts when a door knocks on its port with exactly its flags: the
// kernel filter must never be stricter than Go.
func FuzzDecode(f *testing.F) {
	for _, b := range [][]byte{
		ipv4TCPSyn, ipv4Options, ipv4UDP, ipv6TCP, ipv6Ext,
		ip6(a6, b6, 0, cat(optHdr(60), optHdr(43)), nil),
		ip6(a6, b6, 51, []byte{protoTCP, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2}, tcpHdr(1, 2, wire.SYN|wire.ACK)),
		ip4(a4, b4, protoTCP, 0x2000, []byte{1, 1, 1, 0}, tcpHdr(1, 7000, wire.FIN|wire.URG)),
		{0x4f}, {0x60},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok := Decode(b)
		if !ok {
			return
		}
		if ev.Proto != wire.TCP && ev.Proto != wire.UDP {
			t.Fatalf("Proto = %v", ev.Proto)
		}
		if !ev.Src.IsValid() || !ev.Dst.IsValid() || ev.Src.Is4() != ev.Dst.Is4() || ev.Src.Is4In6() || ev.Dst.Is4In6() {
			t.Fatalf("addresses %v -> %v", ev.Src, ev.Dst)
		}
		if ev.Src.Is4() != (b[0]>>4 == 4) {
			t.Fatalf("IPv%d packet gave %v", b[0]>>4, ev.Src)
		}
		if ev.Flags&^tcpFlagMask != 0 || (ev.Proto == wire.UDP && ev.Flags != 0) {
			t.Fatalf("Flags = %#x for %v", ev.Flags, ev.Proto)
		}
		port := capture.Port{Proto: ev.Proto, Port: ev.Port}
		if ev.Proto == wire.TCP {
			port.Flags = []wire.FlagFilter{{Set: ev.Flags, Unset: tcpFlagMask &^ ev.Flags}}
		}
		prog, err := program(capture.Spec{Ports: []capture.Port{port}}, false)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := vm.Run(b); err != nil || n == 0 {
			t.Fatalf("Decode reports %+v, the filter for it drops the packet (%d, %v)", ev, n, err)
		}
	})
}

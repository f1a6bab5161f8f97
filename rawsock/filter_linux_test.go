//go:build linux

package rawsock

import (
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// TestProgramKernelAccepts hands programs to the kernel's checker. Any
// socket takes a classic BPF filter, without privileges.
func TestProgramKernelAccepts(t *testing.T) {
	var many capture.Spec
	for i := range 1024 {
		p := capture.Port{Proto: wire.TCP, Port: uint16(1 + 61*i), Flags: []wire.FlagFilter{{Set: uint8(i % 64), Unset: uint8((i/64)%64) &^ uint8(i%64)}}}
		if i%3 == 0 {
			p = capture.Port{Proto: wire.UDP, Port: uint16(1 + 61*i)}
		}
		many.Ports = append(many.Ports, p)
	}
	for name, spec := range map[string]capture.Spec{
		"test":                   testSpec,
		"IPv4 only":              {Ports: testSpec.Ports, IPv4Only: true},
		"no ports":               {},
		"1024, flags left to Go": many,
		"1024, flags in the kernel": func() capture.Spec {
			// 32 doors of 32 ports, a flag set each.
			var s capture.Spec
			for i := range 1024 {
				s.Ports = append(s.Ports, capture.Port{Proto: wire.TCP, Port: uint16(1 + 61*i), Flags: []wire.FlagFilter{{Set: uint8(i%32) | wire.SYN, Unset: wire.ACK}}})
			}
			return s
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			ins, err := Program(spec)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := bpf.Assemble(ins)
			if err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Skipf("no UDP socket: %v", err)
			}
			defer unix.Close(fd)
			prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
			if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
				t.Fatalf("the kernel refuses the %d-instruction program: %v", len(raw), err)
			}
			t.Logf("%d instructions", len(raw))
		})
	}
}

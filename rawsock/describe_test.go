package rawsock

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"
)

// The jumps' targets are absolute, as tcpdump -d prints them, and the
// tests the kernel lacks read as the ones it has with their targets
// swapped.
func TestDisassemble(t *testing.T) {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x800, SkipTrue: 0, SkipFalse: 3},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 1},
		bpf.Jump{Skip: 1},
		bpf.RetConstant{Val: 262144},
		bpf.RetConstant{Val: 0},
	}
	want := []string{
		"(000) ldh      [12]",
		"(001) jeq      #0x800           jt 2\tjf 5",
		"(002) jeq      #0x6             jt 3\tjf 5",
		"(003) jset     #0x1fff          jt 5\tjf 4",
		"(004) ja       6",
		"(005) ret      #262144",
		"(006) ret      #0",
	}
	if diff := cmp.Diff(want, Disassemble(prog)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Describe's lines for a spec: the addresses, then the program the
// sockets carry, every instruction of it.
func TestDescribe(t *testing.T) {
	prog, err := Program(testSpec)
	if err != nil {
		t.Fatal(err)
	}
	got := describe([]netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("127.0.0.1")}, prog, nil)
	if len(got) != len(prog)+3 || got[0] != "local IP: 127.0.0.1" || got[1] != "local IP: 198.18.0.1" ||
		!strings.HasPrefix(got[2], "capture filter: classic BPF, ") {
		t.Errorf("describe: %q", got)
	}
	if len(got) > 3 && !strings.HasPrefix(got[3], "(000) ") {
		t.Errorf("first instruction %q", got[3])
	}
}

package rawsock

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/net/bpf"
)

// Disassemble returns prog one instruction a line, numbered, with the
// jumps' targets as absolute instruction numbers, as tcpdump -d prints a
// filter: "(004) jeq      #0x6             jt 5    jf 9".
func Disassemble(prog []bpf.Instruction) []string {
	out := make([]string, 0, len(prog))
	for i, ins := range prog {
		next := i + 1
		var s string
		switch j := ins.(type) {
		case bpf.Jump:
			s = fmt.Sprintf("%-8s %d", "ja", next+int(j.Skip))
		case bpf.JumpIf:
			s = jump(j.Cond, fmt.Sprintf("#0x%x", j.Val), next+int(j.SkipTrue), next+int(j.SkipFalse))
		case bpf.JumpIfX:
			s = jump(j.Cond, "x", next+int(j.SkipTrue), next+int(j.SkipFalse))
		case fmt.Stringer:
			op, arg, _ := strings.Cut(j.String(), " ")
			s = strings.TrimSpace(fmt.Sprintf("%-8s %s", op, arg))
		default:
			s = fmt.Sprintf("%#v", ins)
		}
		out = append(out, fmt.Sprintf("(%03d) %s", i, s))
	}
	return out
}

// jump writes a conditional jump with the kernel's four tests, as the
// kernel runs it: the other tests are those with their targets swapped.
func jump(c bpf.JumpTest, operand string, jt, jf int) string {
	op := ""
	switch c {
	case bpf.JumpEqual:
		op = "jeq"
	case bpf.JumpNotEqual:
		op, jt, jf = "jeq", jf, jt
	case bpf.JumpGreaterThan:
		op = "jgt"
	case bpf.JumpLessOrEqual:
		op, jt, jf = "jgt", jf, jt
	case bpf.JumpGreaterOrEqual:
		op = "jge"
	case bpf.JumpLessThan:
		op, jt, jf = "jge", jf, jt
	case bpf.JumpBitsSet:
		op = "jset"
	case bpf.JumpBitsNotSet:
		op, jt, jf = "jset", jf, jt
	default:
		op = fmt.Sprintf("j?%d", c)
	}
	return fmt.Sprintf("%-8s %-16s jt %d\tjf %d", op, operand, jt, jf)
}

// describe returns the lines of Describe for the local addresses locals
// (nil: not known) and the program prog.
func describe(locals []netip.Addr, prog []bpf.Instruction, err error) []string {
	slices.SortFunc(locals, func(a, b netip.Addr) int { return a.Compare(b) })
	var out []string
	for _, a := range locals {
		out = append(out, "local IP: "+a.String())
	}
	if err != nil {
		return append(out, fmt.Sprintf("capture filter: %v", err))
	}
	out = append(out, fmt.Sprintf("capture filter: classic BPF, %d instructions, on cooked packets (as tcpdump -d prints it):", len(prog)))
	return append(out, Disassemble(prog)...)
}

package rawsock

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// A label names a position in a program under construction. Conditional
// jumps in classic BPF reach at most 255 instructions ahead, so the
// assembler resolves labels itself and routes a jump that is too far
// through an unconditional jump (which has a 32-bit offset) placed right
// after it.
type label int

// next is the label of the instruction that follows a conditional jump.
const next label = -1

type itemKind uint8

const (
	kindIns   itemKind = iota // an instruction without a label operand
	kindJump                  // ja label
	kindCond                  // jif cond val, label, label
	kindLabel                 // a position, no instruction
)

type item struct {
	kind itemKind
	ins  bpf.Instruction // kindIns
	cond bpf.JumpTest    // kindCond
	val  uint32          // kindCond
	t, f label           // kindCond: targets; kindJump: t; kindLabel: t
	// farT and farF record that the true or false target is reached
	// through a trampoline.
	farT, farF bool
}

// assembler builds a program with forward jumps to labels.
type assembler struct {
	items  []item
	labels int
}

func (a *assembler) newLabel() label {
	a.labels++
	return label(a.labels - 1)
}

func (a *assembler) ins(in ...bpf.Instruction) {
	for _, i := range in {
		a.items = append(a.items, item{kind: kindIns, ins: i})
	}
}

func (a *assembler) jump(l label) { a.items = append(a.items, item{kind: kindJump, t: l}) }

// jif emits "if A cond val goto t else goto f".
func (a *assembler) jif(cond bpf.JumpTest, val uint32, t, f label) {
	a.items = append(a.items, item{kind: kindCond, cond: cond, val: val, t: t, f: f})
}

func (a *assembler) mark(l label) { a.items = append(a.items, item{kind: kindLabel, t: l}) }

func (it *item) size() int {
	switch it.kind {
	case kindLabel:
		return 0
	case kindCond:
		n := 1
		if it.farT {
			n++
		}
		if it.farF {
			n++
		}
		return n
	}
	return 1
}

// assemble resolves the labels and returns the program. Every label must
// be marked exactly once, after every jump to it.
func (a *assembler) assemble() ([]bpf.Instruction, error) {
	pos := make([]int, len(a.items)) // position of each item
	lpos := make([]int, a.labels)
	for {
		for i := range lpos {
			lpos[i] = -1
		}
		p := 0
		for i := range a.items {
			pos[i] = p
			if a.items[i].kind == kindLabel {
				if lpos[a.items[i].t] != -1 {
					return nil, fmt.Errorf("rawsock: internal error: label %d marked twice", a.items[i].t)
				}
				lpos[a.items[i].t] = p
			}
			p += a.items[i].size()
		}
		changed := false
		for i := range a.items {
			it := &a.items[i]
			if it.kind != kindCond {
				continue
			}
			end := pos[i] + it.size()
			for _, b := range []struct {
				l   label
				far *bool
			}{{it.t, &it.farT}, {it.f, &it.farF}} {
				if *b.far {
					continue
				}
				to := end
				if b.l != next {
					to = lpos[b.l]
				}
				if to < 0 {
					return nil, fmt.Errorf("rawsock: internal error: label %d never marked", b.l)
				}
				if d := to - (pos[i] + 1); d > 255 {
					*b.far = true
					changed = true
				} else if d < 0 {
					return nil, fmt.Errorf("rawsock: internal error: backward jump to label %d", b.l)
				}
			}
		}
		if !changed {
			break
		}
	}

	var out []bpf.Instruction
	for i := range a.items {
		it := &a.items[i]
		p := pos[i]
		target := func(l label) int {
			if l == next {
				return p + it.size()
			}
			return lpos[l]
		}
		switch it.kind {
		case kindIns:
			out = append(out, it.ins)
		case kindJump:
			out = append(out, bpf.Jump{Skip: uint32(target(it.t) - (p + 1))})
		case kindCond:
			stub := p + 1
			j := bpf.JumpIf{Cond: it.cond, Val: it.val}
			var stubs []bpf.Instruction
			if it.farT {
				j.SkipTrue = uint8(stub - (p + 1))
				stubs = append(stubs, bpf.Jump{Skip: uint32(target(it.t) - (stub + 1))})
				stub++
			} else {
				j.SkipTrue = uint8(target(it.t) - (p + 1))
			}
			if it.farF {
				j.SkipFalse = uint8(stub - (p + 1))
				stubs = append(stubs, bpf.Jump{Skip: uint32(target(it.f) - (stub + 1))})
			} else {
				j.SkipFalse = uint8(target(it.f) - (p + 1))
			}
			out = append(out, j)
			out = append(out, stubs...)
		}
	}
	return out, nil
}

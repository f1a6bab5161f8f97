package match

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
)

// Kind says what an Action reports.
type Kind uint8

// The kinds of Action, each tied to one of knockd's log lines.
const (
	// Stage: Src advanced to Stage on Door ("IP: door: Stage N").
	Stage Kind = iota + 1
	// Open: Src completed Door's sequence ("IP: door: OPEN SESAME").
	Open
	// Timeout: Src's attempt on Door expired at Stage ("IP: door:
	// sequence timeout (stage N)").
	Timeout
	// Disabled: Door was switched off; Err says why (its one-time
	// sequences ran out, or the file could not be updated).
	Disabled
	// NewSequence: Door's one-time sequence moved on; the capture spec
	// must be rebuilt from Doors.
	NewSequence
	// NewSteps: the steps time-derived Door accepts moved on; the
	// capture spec must be rebuilt from Doors.
	NewSteps
	// Replay: Src completed the sequence of a step of time-derived Door
	// that has already opened it; nothing opens.
	Replay
	// Stale: Src completed the sequence of a step of time-derived Door
	// that is spent, since a later step has opened the door; nothing
	// opens.
	Stale
)

func (k Kind) String() string {
	switch k {
	case Stage:
		return "Stage"
	case Open:
		return "Open"
	case Timeout:
		return "Timeout"
	case Disabled:
		return "Disabled"
	case NewSequence:
		return "NewSequence"
	case NewSteps:
		return "NewSteps"
	case Replay:
		return "Replay"
	case Stale:
		return "Stale"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Action is something the daemon must log or do.
type Action struct {
	Kind Kind
	// Door is the door concerned, as configured when the action happened.
	Door *config.Door
	// Src is the knocker. Invalid for Disabled and NewSequence.
	Src netip.Addr
	// Stage is the number of knocks matched. Valid iff Kind is Stage or
	// Timeout.
	Stage int
	// Time is the event or timer time that caused the action.
	Time time.Time
	// Err is the reason when Kind == Disabled. When Kind == NewSequence,
	// it is nil, or says why the one-time file was read again from its
	// start (it was replaced or changed since it was read).
	Err error
}

// appendAction appends an action to out. It sets the fields one by one:
// a composite literal would be built on the stack and copied in 16-byte
// words, a load the CPU cannot forward from the smaller stores that built
// it, which would stall until they retire, cache misses before them
// included.
func appendAction(out []Action, kind Kind, door *config.Door, src netip.Addr, stage int, t time.Time, err error) []Action {
	n := len(out)
	if n < cap(out) {
		out = out[:n+1]
	} else {
		out = append(out, Action{})
	}
	a := &out[n]
	a.Kind = kind
	a.Door = door
	a.Src = src
	a.Stage = stage
	a.Time = t
	a.Err = err
	return out
}

// String returns the action as knockd logs it, for example
// "192.0.2.7: openSSH: Stage 2".
func (a Action) String() string {
	return a.Line(a.Src.String())
}

// Line returns the log line of knockd 0.8 for a, with the knocker named
// by who ("IP", or "IP (host)" with -l): "IP: door: Stage N", "IP: door:
// OPEN SESAME", "IP: door: sequence timeout (stage N)", and ours for
// time-derived doors: "IP: door: used sequence replayed (step N): nothing
// opened". It is the one place these texts, which fail2ban filters
// parse, are written.
func (a Action) Line(who string) string {
	switch a.Kind {
	case Stage:
		return fmt.Sprintf("%s: %s: Stage %d", who, a.Door.Name, a.Stage)
	case Open:
		return fmt.Sprintf("%s: %s: OPEN SESAME", who, a.Door.Name)
	case Timeout:
		return fmt.Sprintf("%s: %s: sequence timeout (stage %d)", who, a.Door.Name, a.Stage)
	case Disabled:
		return fmt.Sprintf("%v --> disabling the door", a.Err)
	case NewSequence:
		return fmt.Sprintf("new sequence for door %s: %s", a.Door.Name, seqString(a.Door.Sequence))
	case NewSteps:
		return fmt.Sprintf("door %s: now at step %d", a.Door.Name, seqderive.Counter(a.Time, a.Door.Derive.Step))
	case Replay:
		return fmt.Sprintf("%s: %s: used sequence replayed (step %d): nothing opened", who, a.Door.Name, a.Door.Step)
	case Stale:
		return fmt.Sprintf("%s: %s: sequence of spent step %d refused: a later step has opened the door", who, a.Door.Name, a.Door.Step)
	}
	return a.Kind.String()
}

func seqString(seq []wire.Knock) string {
	b := make([]byte, 0, len(seq)*10)
	for i, k := range seq {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k.String()...)
	}
	return string(b)
}

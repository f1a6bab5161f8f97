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
	// Ended: Src's attempt on Door ended at Stage without opening, for
	// the reason Why (WrongKnock, Evicted or Spent; Reloaded from
	// TakeEnded); with Options.Explain only.
	// A timeout is reported as Timeout.
	Ended
	// Ignored: Door did not take Src's knock Got, for the reason Why
	// (FlagsMismatch or Refused), and Src's attempt, if any, at Stage (0
	// for none) goes on; with Options.Explain only.
	Ignored
)

// Reason says why an attempt ended or a knock was ignored.
type Reason uint8

// The reasons of Ended and Ignored actions.
const (
	// WrongKnock: the knock Got was not the one expected after Stage.
	WrongKnock Reason = iota + 1
	// Evicted: the attempt, at stage 1, made room for a newer one, as
	// MaxAttempts were in progress.
	Evicted
	// FlagsMismatch: the TCP packet's flags (Flags) do not match the
	// door's TCPFlags.
	FlagsMismatch
	// Refused: no room for a new attempt: MaxAttempts were in progress,
	// none at stage 1.
	Refused
	// Spent: the door's one-time sequence was used, by another knocker
	// or the same one on another attempt, so the attempt's is no more.
	Spent
	// Reloaded: a reload changed or removed the attempt's door.
	Reloaded
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
	case Ended:
		return "Ended"
	case Ignored:
		return "Ignored"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Action is something the daemon must log or do.
type Action struct {
	Kind Kind
	// Why is the reason. Valid iff Kind is Ended or Ignored.
	Why Reason
	// Got is the knock that arrived. Valid iff Why is WrongKnock,
	// FlagsMismatch or Refused.
	Got wire.Knock
	// Flags are the TCP flags that arrived. Valid iff Why is
	// FlagsMismatch.
	Flags uint8
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
	a.Why, a.Got, a.Flags = 0, wire.Knock{}, 0
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
	case Ended, Ignored:
		return a.Explanation(who)
	}
	return a.Kind.String()
}

// appendWhy appends an Ended or Ignored action. It is called only with
// Options.Explain, so it need not be as lean as appendAction.
func appendWhy(out []Action, kind Kind, why Reason, door *config.Door, src netip.Addr, stage int, got wire.Knock, flags uint8, t time.Time) []Action {
	return append(out, Action{Kind: kind, Why: why, Got: got, Flags: flags, Door: door, Src: src, Stage: stage, Time: t})
}

// Explanation returns the line of -D that says why an attempt ended
// without opening, or why a knock was not taken, with the knocker named
// by who: for Ended and Ignored actions, and for a Timeout, whose
// explanation repeats it with the Seq_Timeout and the knock that was
// awaited. It is "" for the other kinds. For example:
//
//	198.18.0.2: openSSH: attempt ended at stage 1: got 8500/tcp, expected 8000/tcp
//	198.18.0.2: openSSH: attempt ended at stage 2: timed out after 5s (Seq_Timeout), expected 9000/tcp
//	198.18.0.2: openSSH: attempt ended at stage 1: evicted, MaxAttempts attempts in progress, the oldest at stage 1 made room
//	198.18.0.2: openSSH: 8000/tcp ignored at stage 1: flags ack do not match TCPFlags syn,!ack
func (a Action) Explanation(who string) string {
	switch {
	case a.Kind == Timeout:
		return fmt.Sprintf("%s: %s: attempt ended at stage %d: timed out after %v (Seq_Timeout), expected %s",
			who, a.Door.Name, a.Stage, a.Door.SeqTimeout, a.expected())
	case a.Kind == Ended && a.Why == WrongKnock:
		return fmt.Sprintf("%s: %s: attempt ended at stage %d: got %s, expected %s", who, a.Door.Name, a.Stage, knockString(a.Got), a.expected())
	case a.Kind == Ended && a.Why == Spent:
		return fmt.Sprintf("%s: %s: attempt ended at stage %d: the one-time sequence was used, the door moved on to the next", who, a.Door.Name, a.Stage)
	case a.Kind == Ended && a.Why == Reloaded:
		return fmt.Sprintf("%s: %s: attempt ended at stage %d: the door changed in a reload", who, a.Door.Name, a.Stage)
	case a.Kind == Ended && a.Why == Evicted:
		return fmt.Sprintf("%s: %s: attempt ended at stage %d: evicted, MaxAttempts attempts in progress, the oldest at stage 1 made room", who, a.Door.Name, a.Stage)
	case a.Kind == Ignored:
		at := ""
		if a.Stage > 0 {
			at = fmt.Sprintf(" at stage %d", a.Stage)
		}
		switch a.Why {
		case FlagsMismatch:
			flags := wire.FlagFilter{Set: a.Flags}.String()
			if flags == "" {
				flags = "none"
			}
			return fmt.Sprintf("%s: %s: %s ignored%s: flags %s do not match TCPFlags %s", who, a.Door.Name, knockString(a.Got), at, flags, a.Door.Flags)
		case Refused:
			return fmt.Sprintf("%s: %s: %s ignored: no room for a new attempt, MaxAttempts attempts in progress and none at stage 1", who, a.Door.Name, knockString(a.Got))
		}
	}
	return ""
}

// expected is the knock a's attempt awaited after a.Stage.
func (a Action) expected() string {
	if a.Stage < 0 || a.Stage >= len(a.Door.Sequence) {
		return "nothing more"
	}
	return knockString(a.Door.Sequence[a.Stage])
}

// knockString writes k as "8000/tcp".
func knockString(k wire.Knock) string { return fmt.Sprintf("%d/%s", k.Port, k.Proto) }

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

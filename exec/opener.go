package exec

import (
	"context"
	"net/netip"
	"time"

	"github.com/knock-go/knock/config"
)

// An Opener opens doors for knockers. The daemon hands every OPEN SESAME
// to each of its Openers, and each does its own part of the door (the
// Runner its commands, a kernel set its element), so that one door may
// combine several kinds of opening. Open must not block the matcher.
type Opener interface {
	// Open opens d for src, which log lines call label, from now until
	// Cmd_Timeout later; an Opener with nothing to do for d returns.
	Open(d *config.Door, src netip.Addr, label string, now time.Time)
	// Close ends the Opener's work, waiting at most until ctx is done.
	Close(ctx context.Context) error
}

var _ Opener = (*Runner)(nil)

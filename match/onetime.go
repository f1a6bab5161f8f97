package match

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/wire"
)

// OneTimeFunc marks the sequence a one-time door just used as spent and
// returns the door's next sequence and where it was read in the file. It
// returns an error wrapping config.ErrNoSequence when none is left.
type OneTimeFunc func(d *config.Door) (next []wire.Knock, at config.OneTimeLine, err error)

// disableError reads as knockd's log line and keeps its cause underneath.
type disableError struct {
	msg   string
	cause error
}

func (e *disableError) Error() string { return e.msg }
func (e *disableError) Unwrap() error { return e.cause }

// open reports an opening of door di, moving a one-time door on to its
// next sequence first, so that a used sequence is spent on disk before
// any command runs and can never match again.
func (m *Matcher) open(di int32, src netip.Addr, now time.Time, out []Action) []Action {
	d := &m.doors[di]
	cfg := d.cfg
	if d.derived {
		return m.openDerived(di, src, now, out)
	}
	if cfg.OneTimeFile == "" {
		return append(out, Action{Kind: Open, Door: cfg, Src: src, Time: now})
	}
	next, at, err := m.opts.OneTime(cfg)
	var spent bool
	var spentErr error
	switch {
	case err == nil && len(next) > 0:
		nd := *cfg
		nd.Sequence, nd.OneTimeOffset, nd.OneTimeText, nd.OneTimeInfo = next, at.Off, at.Text, at.Info
		d.cfg, d.seq = &nd, next
	case err == nil:
		// No knock in the next sequence: nothing can open the door.
		spent = true
	case errors.Is(err, config.ErrNoSequence):
		// The used line was marked: the opening stands, then the door
		// closes for good.
		spent = true
	case errors.Is(err, config.ErrBadLine):
		// The used line was marked (or its file is gone), but the next
		// one is not a sequence: the opening stands, and the door waits
		// until the file is fixed and the configuration re-read.
		spent = true
		spentErr = &disableError{fmt.Sprintf("the next one time sequence for door %s is not a sequence", cfg.Name), err}
	default:
		// The used line could not be marked, so it could be replayed
		// after a restart: refuse the opening and stop the door.
		d.disabled = true
		out = m.dropDoor(di, cfg, now, out)
		m.index()
		return append(out, Action{Kind: Disabled, Door: cfg, Time: now,
			Err: &disableError{fmt.Sprintf("error while disabling used one time sequence for door %s", cfg.Name), err}})
	}
	out = append(out, Action{Kind: Open, Door: cfg, Src: src, Time: now})
	// Attempts of other sources on this door were following the old
	// sequence: it is spent, so they end.
	out = m.dropDoor(di, cfg, now, out)
	if spent {
		d.disabled = true
		m.index()
		if spentErr == nil {
			spentErr = fmt.Errorf("no more sequences left in the one time sequences file for door %s", cfg.Name)
		}
		return append(out, Action{Kind: Disabled, Door: cfg, Time: now, Err: spentErr})
	}
	m.index()
	var reread error
	if at.Reread != "" {
		reread = fmt.Errorf("%s: %s, so the used sequence was not marked in it; the door goes on with its line %d", cfg.OneTimeFile, at.Reread, at.Num)
	}
	return append(out, Action{Kind: NewSequence, Door: d.cfg, Time: now, Err: reread})
}

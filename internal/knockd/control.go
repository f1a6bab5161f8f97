package knockd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/control"
	"github.com/knock-go/knock/match"
)

// ControlPath returns the control socket of an instance: --control, else
// ControlSocket of its configuration, else the default (see
// defaultControlPath). cfg may be nil.
func ControlPath(flag string, cfg *config.Config, configPath string) (string, error) {
	switch {
	case flag != "":
		return flag, nil
	case cfg != nil && cfg.ControlSocket != "":
		return cfg.ControlSocket, nil
	}
	return defaultControlPath(configPath)
}

// defaultControlPath is the control socket of the instance configured by
// configPath: a socket named after the configuration file (as the state
// directory is: see stateName) under systemd's $RUNTIME_DIRECTORY, under
// /run/knockd for root, or under $XDG_RUNTIME_DIR/knockd.
func defaultControlPath(configPath string) (string, error) {
	base := ""
	switch {
	case os.Getenv("RUNTIME_DIRECTORY") != "":
		base = strings.Split(os.Getenv("RUNTIME_DIRECTORY"), ":")[0]
	case os.Geteuid() == 0:
		base = "/run/knockd"
	case os.Getenv("XDG_RUNTIME_DIR") != "":
		base = filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "knockd")
	default:
		return "", errors.New("no directory for the control socket: set ControlSocket in [options], --control, RuntimeDirectory= in the systemd unit, or XDG_RUNTIME_DIR")
	}
	name := stateName(configPath)
	// A unix socket's path is short: keep the end of the name, where
	// its hash is.
	room := config.MaxSocketPath - len(base) - len("/.sock")
	if room < 9 {
		return "", fmt.Errorf("the directory %s is too long for a control socket: set ControlSocket in [options] or --control", base)
	}
	if len(name) > room {
		name = name[len(name)-room:]
	}
	return filepath.Join(base, name+".sock"), nil
}

// openControl opens the control socket. One that another live daemon
// answers on, or one asked for by name that cannot be made, stops
// start-up; a default one that cannot be made (a user without
// $XDG_RUNTIME_DIR) only means no control socket, said with -D: knockd
// 0.8's output stays as it was.
func (d *daemon) openControl() error {
	path, err := ControlPath(d.opts.Control, d.cfg, d.opts.ConfigPath)
	if err == nil {
		d.ctl, err = control.Listen(path, d.log.Log)
	}
	switch {
	case err == nil:
		d.log.Debugf("control socket: %s", path)
		return nil
	case errors.Is(err, control.ErrAnswering) || d.opts.Control != "" || d.cfg.ControlSocket != "":
		return err
	}
	d.log.Debugf("no control socket, so knockd --status and --revoke will not answer: %v", err)
	return nil
}

// Status implements control.Handler. It reads counters the matcher
// publishes, and asks the matcher for its doors and first attempts with
// a bounded wait: a busy matcher never waits for it.
func (d *daemon) Status() *control.Status {
	// Empty lists print as [], not null, for the JSON's readers.
	st := &control.Status{PID: os.Getpid(), Config: d.opts.ConfigPath, Socket: d.ctl.Path(), Backend: d.src.Name(), Started: d.started, Now: time.Now(),
		Doors: []control.Door{}, Attempts: control.Attempts{List: []control.Attempt{}}}
	var doors []*config.Door
	var atts []match.Attempt
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	ran := d.loop.Do(ctx, func(m *match.Matcher) {
		doors = m.Doors()
		atts = m.Attempts(control.ListMax)
	})
	cancel()
	if !ran {
		doors = d.config().Doors
	}
	for _, dr := range doors {
		st.Doors = append(st.Doors, d.doorStatus(dr))
	}
	for _, a := range atts {
		st.Attempts.List = append(st.Attempts.List, control.Attempt{Door: a.Door, Src: a.Src.String(), Stage: a.Stage, Since: a.Since, Until: a.Until})
	}
	ms := d.loop.Stats()
	st.Attempts.InProgress, st.Attempts.Max = ms.InProgress, ms.MaxAttempts
	if st.Openings = d.openings(); st.Openings == nil {
		st.Openings = []control.Opening{}
	}
	st.Counters = d.counters()
	return st
}

func (d *daemon) doorStatus(dr *config.Door) control.Door {
	cd := control.Door{Name: dr.Name, Kind: "sequence", Sequence: knocks(dr.Sequence),
		SeqTimeout: int64(dr.SeqTimeout / time.Second), CmdTimeout: int64(dr.CmdTimeout / time.Second)}
	switch {
	case dr.OneTimeFile != "":
		cd.Kind = "one-time"
	case dr.SecretFile != "":
		// The sequence changes with the step; say how, not which, so
		// that --status tells nobody the current one.
		p := dr.Derive
		cd.Kind = "derived"
		cd.Sequence = fmt.Sprintf("%d %s knocks from %d-%d, every %d s", p.Length, p.Proto, p.Low, p.High, int64(p.Step/time.Second))
	}
	if dr.StartCommand != "" || dr.StartCommand6 != "" {
		cd.Opens = append(cd.Opens, "commands")
	}
	for _, s := range []config.NFTSet{dr.NFTSet, dr.NFTSet6} {
		if s != (config.NFTSet{}) {
			cd.Opens = append(cd.Opens, "nft set "+s.String())
		}
	}
	for _, s := range []string{dr.IPSet, dr.IPSet6} {
		if s != "" {
			cd.Opens = append(cd.Opens, "ipset "+s)
		}
	}
	c := d.count.ofName(dr.Name)
	cd.Stages, cd.Openings, cd.Timeouts = c.stages, c.opens, c.timeouts
	return cd
}

// openings lists the pending openings of both kinds, soonest to close
// first.
func (d *daemon) openings() []control.Opening {
	var out []control.Opening
	for _, o := range d.runner.Pending() {
		out = append(out, commandOpening(o.Door, o.Src, o.Label, o.Since, o.Until, o.Stop, o.Waiting))
	}
	for _, e := range d.sets.Pending() {
		out = append(out, setOpening(e.Door, e.Src, e.Label, e.Since, e.Until, e.Set))
	}
	sortOpenings(out)
	return out
}

func commandOpening(door string, src netip.Addr, label string, since, until time.Time, stop string, waiting bool) control.Opening {
	o := control.Opening{Door: door, Src: src.String(), Since: since, Until: until, Close: "stop command: " + stop, Waiting: waiting}
	if !src.IsValid() {
		o.Src = label
	}
	if label != o.Src {
		o.Label = label
	}
	return o
}

func setOpening(door string, src netip.Addr, label string, since, until time.Time, set string) control.Opening {
	o := control.Opening{Door: door, Src: src.String(), Since: since, Until: until, Close: set}
	if label != o.Src {
		o.Label = label
	}
	return o
}

func sortOpenings(os []control.Opening) {
	for i := 1; i < len(os); i++ {
		for j := i; j > 0 && os[j].Until.Before(os[j-1].Until); j-- {
			os[j], os[j-1] = os[j-1], os[j]
		}
	}
}

// counters gathers every counter, none of them from the matcher's own
// state: it never waits for the matcher.
func (d *daemon) counters() control.Counters {
	var c control.Counters
	if cs, ok := d.src.(capture.Counter); ok {
		s := cs.Stats()
		c.PacketsSeen, c.PacketsDropped, c.PacketsMalformed, c.PacketsIgnored = s.Received+s.Accepted, s.Dropped, s.Malformed, s.Ignored
	}
	for _, dc := range d.count.snapshot() {
		c.Stages += dc.stages
		c.Openings += dc.opens
		c.Timeouts += dc.timeouts
	}
	ms := d.loop.Stats()
	c.Evictions, c.RefusedAttempts = ms.Evicted, ms.Refused
	rs := d.runner.Stats()
	c.CommandsStarted, c.CommandsFailed, c.CommandsRefused, c.CommandsKilled, c.CommandsDropped = rs.Started, rs.Failed, rs.Rejected, rs.Killed, rs.Dropped
	c.CommandsRunning, c.CommandsWaiting = rs.Running, rs.Waiting
	c.SetDropped = d.sets.Dropped()
	return c
}

// Revoke implements control.Handler: it closes src's openings now, as a
// timeout would, with the line "IP: door: revoked" (the runner logs it
// for the doors it opened, before their stop commands).
func (d *daemon) Revoke(src netip.Addr, door string) []control.Opening {
	var out []control.Opening
	logged := map[string]bool{}
	for _, o := range d.runner.Revoke(src, door) {
		out = append(out, commandOpening(o.Door, o.Src, o.Label, o.Since, o.Until, o.Stop, o.Waiting))
		logged[o.Door] = true
	}
	for _, e := range d.sets.Revoke(src, door) {
		out = append(out, setOpening(e.Door, e.Src, e.Label, e.Since, e.Until, e.Set))
		if !logged[e.Door] {
			logged[e.Door] = true
			d.log.Log("%s: %s: revoked", e.Label, e.Door)
		}
	}
	sortOpenings(out)
	return out
}

//go:build linux

package rawsock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/knock-go/knock/capture"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// compiled is a Spec made ready for use.
type compiled struct {
	spec   capture.Spec
	prog   []bpf.RawInstruction
	tables *tables
	names  []string
}

func compile(spec capture.Spec) (*compiled, error) {
	names, err := interfaceNames(spec.Interfaces)
	if err != nil {
		return nil, err
	}
	ins, err := Program(spec)
	if err != nil {
		return nil, err
	}
	prog, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("rawsock: assembling filter: %w", err)
	}
	return &compiled{spec: spec, prog: prog, tables: newTables(spec), names: names}, nil
}

func (s *Source) open(spec capture.Spec) error {
	c, err := compile(spec)
	if err != nil {
		return err
	}
	nl, err := openRTNL()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := nl.sync(ctx)
	if err != nil {
		nl.Close()
		return fmt.Errorf("rawsock: reading interfaces and addresses: %w", err)
	}

	sys := &s.sys
	sys.mu.Lock()
	defer sys.mu.Unlock()
	sys.spec, sys.prog, sys.names = c.spec, c.prog, c.names
	sys.nl, sys.net = nl, st
	sys.socks = map[sockKey]*sock{}
	sys.ifs = map[string]*ifaceState{}
	s.tables.Store(c.tables)
	s.view.Store(st.view())
	if err := s.reconcileLocked(true); err != nil {
		s.closeLocked()
		return err
	}
	if len(sys.socks) == 0 {
		// Waiting for every named interface: still fail now rather
		// than when one appears.
		if err := available(); err != nil {
			s.closeLocked()
			return err
		}
	}
	return nil
}

// protos returns the ethertypes to open sockets for.
func (sys *system) protos() []uint16 {
	if sys.spec.IPv4Only {
		return []uint16{unix.ETH_P_IP}
	}
	return []uint16{unix.ETH_P_IP, unix.ETH_P_IPV6}
}

// reconcileLocked makes the open sockets match the spec and the links:
// one socket per protocol per named interface that exists (or for all
// interfaces), bound to its current index. In strict mode (New, Update)
// an interface that cannot be opened is an error and nothing changes,
// nothing is logged; otherwise (a link appeared) the failure is logged
// and the others go on.
func (s *Source) reconcileLocked(strict bool) error {
	sys := &s.sys
	// Log lines and the state they record wait until the sockets are
	// settled.
	var notes []func()
	note := func(f func()) { notes = append(notes, f) }

	type target struct {
		name  string
		index int32
		up    bool
	}
	var targets []target
	if sys.names == nil {
		targets = append(targets, target{})
	}
	for _, name := range sys.names {
		is := sys.ifs[name]
		if is == nil {
			is = &ifaceState{}
			sys.ifs[name] = is
		}
		index, link, ok := sys.net.lookup(name)
		if is.attached && (!ok || index != is.index) {
			note(func() {
				s.logf("interface %s is gone", name)
				is.attached, is.index = false, 0
			})
		}
		if !ok {
			if !is.waiting {
				note(func() {
					s.logf("waiting for interface %s", name)
					is.waiting = true
				})
			}
			continue
		}
		targets = append(targets, target{name, index, link.up})
	}

	socks := map[sockKey]*sock{}
	var opened []*sock
	for _, t := range targets {
		var mine []*sock
		var err error
		for _, p := range sys.protos() {
			key := sockKey{t.name, p}
			if k := sys.socks[key]; k != nil && k.index == t.index {
				socks[key] = k
				continue
			}
			var k *sock
			if k, err = openSock(key, t.index, sys.prog); err != nil {
				break
			}
			mine = append(mine, k)
		}
		if err != nil {
			for _, k := range mine {
				k.close()
			}
			// A link that vanished since the dump is not worth
			// failing for: rtnetlink is about to say so.
			if strict && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.ENXIO) {
				for _, k := range opened {
					k.close()
				}
				return err
			}
			if t.name == "" {
				note(func() { s.logf("cannot capture on all interfaces: %v", err) })
			} else if is := sys.ifs[t.name]; !is.failed {
				note(func() {
					s.logf("cannot attach to interface %s: %v", t.name, err)
					is.failed = true
				})
			}
			// Keep whatever this target had; it is tried again on
			// the next link change.
			for _, p := range sys.protos() {
				if k := sys.socks[sockKey{t.name, p}]; k != nil {
					socks[k.key] = k
				}
			}
			continue
		}
		for _, k := range mine {
			socks[k.key] = k
		}
		opened = append(opened, mine...)
		if t.name == "" {
			continue
		}
		is := sys.ifs[t.name]
		switch {
		case len(mine) > 0 || !is.attached:
			note(func() {
				s.logf("attached to interface %s (index %d)", t.name, t.index)
				if !t.up {
					s.logf("interface %s is down", t.name)
				}
				is.attached, is.index, is.up = true, t.index, t.up
				is.waiting, is.failed = false, false
			})
		case is.up != t.up:
			note(func() {
				if t.up {
					s.logf("interface %s is up", t.name)
				} else {
					s.logf("interface %s is down", t.name)
				}
				is.up = t.up
			})
		}
	}

	for key, k := range sys.socks {
		if socks[key] != k {
			s.dropped.Add(k.close())
		}
	}
	sys.socks = socks
	for name := range sys.ifs {
		if !slices.Contains(sys.names, name) {
			delete(sys.ifs, name)
		}
	}
	for _, f := range notes {
		f()
	}
	s.startReadersLocked()
	return nil
}

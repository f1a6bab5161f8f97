//go:build linux

package rawsock

import (
	"errors"
	"fmt"
)

// watch follows rtnetlink: the local addresses, and the named interfaces
// as they come and go.
func (s *Source) watch(r *runState) error {
	sys := &s.sys
	for {
		msgs, err := sys.nl.recv(r.ctx)
		if err == nil {
			sys.mu.Lock()
			var links, addrs bool
			for i := range msgs {
				l, a := sys.net.apply(&msgs[i])
				links, addrs = links || l, addrs || a
			}
			if addrs {
				s.view.Store(sys.net.view())
			}
			if links {
				s.reconcileLocked(false)
			}
			sys.mu.Unlock()
			continue
		}
		if r.ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errOverrun) {
			return fmt.Errorf("rawsock: reading rtnetlink: %w", err)
		}
		st, err := sys.nl.sync(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rawsock: reading interfaces and addresses: %w", err)
		}
		sys.mu.Lock()
		sys.net = st
		s.view.Store(st.view())
		s.reconcileLocked(false)
		sys.mu.Unlock()
	}
}

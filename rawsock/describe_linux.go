package rawsock

import "net/netip"

// Describe returns, for knockd -D, the host's addresses the source takes
// knocks on now ("local IP: 192.0.2.1", as knockd 0.8 prints them) and
// the BPF program attached to its sockets, disassembled.
func (s *Source) Describe() []string {
	var locals []netip.Addr
	if v := s.view.Load(); v != nil {
		for a := range v.locals {
			locals = append(locals, a)
		}
	}
	s.sys.mu.Lock()
	spec := s.sys.spec
	s.sys.mu.Unlock()
	prog, err := Program(spec)
	return describe(locals, prog, err)
}

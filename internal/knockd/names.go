package knockd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Reverse lookups for -l. knockd 0.8 asks the resolver on the first knock
// of every attempt and waits for the answer, so a resolver that does not
// answer stalls everything: here a lookup never sits on the way of a log
// line, a command or shutdown. A name is shown once it is known; until
// then, and when there is none, the line shows the address alone, which
// is what knockd 0.8 prints when its lookup fails.
const (
	// lookupTimeout bounds one lookup.
	lookupTimeout = 2 * time.Second
	// lookupWorkers is how many lookups run at once.
	lookupWorkers = 2
	// lookupQueue is how many addresses may wait for a worker; a new
	// address that finds the queue full is looked up the next time it
	// knocks.
	lookupQueue = 256
	// maxNames bounds the cache of labels (and lookups in flight).
	maxNames = 4096
)

// lookupFunc is the resolver's LookupAddr: the names of addr.
type lookupFunc func(ctx context.Context, addr string) ([]string, error)

// names renders knockers for log lines: "IP", or with -l "IP (host)" once
// the reverse lookup of IP has answered. label never waits for DNS.
type names struct {
	lookup lookupFunc // nil without -l
	ctx    context.Context
	cancel context.CancelFunc
	queue  chan netip.Addr

	mu    sync.Mutex
	cache map[netip.Addr]string // the label; "" while the lookup is queued or running
}

// newNames returns the names of -l (lookup true) using resolve, or
// net.DefaultResolver when resolve is nil.
func newNames(lookup bool, resolve lookupFunc) *names {
	n := &names{}
	if !lookup {
		return n
	}
	if resolve == nil {
		resolve = net.DefaultResolver.LookupAddr
	}
	n.lookup = resolve
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.queue = make(chan netip.Addr, lookupQueue)
	n.cache = map[netip.Addr]string{}
	for range lookupWorkers {
		go n.work()
	}
	return n
}

// label returns what log lines call ip. Without -l it is the address;
// with -l, the address and its name when the name is known, else the
// address, and the lookup is started in the background.
func (n *names) label(ip netip.Addr) string {
	if n.lookup == nil {
		return ip.String()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	l, ok := n.cache[ip]
	switch {
	case ok && l != "":
		return l
	case ok:
		// Being looked up.
	case n.ctx.Err() != nil:
		// Shutting down.
	default:
		if len(n.cache) >= maxNames {
			clear(n.cache)
		}
		select {
		case n.queue <- ip:
			n.cache[ip] = ""
		default:
			// Full: try again at this address's next knock.
		}
	}
	return ip.String()
}

// work looks the queued addresses up, one at a time, until close.
func (n *names) work() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case ip := <-n.queue:
			l := ip.String()
			ctx, cancel := context.WithTimeout(n.ctx, lookupTimeout)
			hosts, err := n.lookup(ctx, ip.String())
			cancel()
			if err == nil && len(hosts) > 0 {
				l = fmt.Sprintf("%s (%s)", ip, strings.TrimSuffix(hosts[0], "."))
			}
			n.mu.Lock()
			if _, ok := n.cache[ip]; ok { // else dropped from the cache meanwhile
				n.cache[ip] = l
			}
			n.mu.Unlock()
		}
	}
}

// close stops the lookups. It does not wait for the ones running: their
// context ends, and a resolver that ignores it must not hold up shutdown;
// the workers end as soon as their lookup returns.
func (n *names) close() {
	if n.cancel != nil {
		n.cancel()
	}
}

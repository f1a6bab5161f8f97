//go:build linux

package rawsock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rtnl follows the host's links and addresses through
// github.com/vishvananda/netlink: two subscriptions hear of every change,
// and a handle reads the full tables.
//
// Everything is bound to the network namespace of the thread that called
// openRTNL, also when the tables are read again later from another
// goroutine (whose thread may be in another namespace).
type rtnl struct {
	ns  netns.NsHandle  // the namespace of openRTNL's thread; netns.None() if unknown
	h   *netlink.Handle // reads the tables; its socket is bound to ns
	out []nlMsg         // what recv returned last

	// mu guards sub and closed: Close may come from another goroutine
	// while the watcher waits in recv or subscribes again in sync.
	mu     sync.Mutex
	sub    *subscription // nil after a loss, until sync
	closed bool
}

// subscription is one pair of link and address subscriptions. When
// either ends (the socket failed, a notice was lost or could not be
// read), the whole pair is dropped and the tables are read again.
type subscription struct {
	done  chan struct{}
	links chan netlink.LinkUpdate
	addrs chan netlink.AddrUpdate
	errc  chan error // the first error the library reported
}

// subscriptionQueue is how many notices of each kind wait for the
// watcher; the kernel queues more in the socket (rtnlReadBuffer).
const subscriptionQueue = 64

// rtnlReadBuffer is the receive buffer of each subscription: a burst of
// changes (a VPN coming up, a container host) must not overflow it; if
// it does anyway, the tables are read again.
const rtnlReadBuffer = 1 << 20

// rtnlTimeout bounds one table read.
const rtnlTimeout = 10 * time.Second

func openRTNL() (*rtnl, error) {
	ns, err := netns.Get()
	if err != nil {
		// Without /proc the thread's namespace cannot be named; the
		// daemon's threads all share one, so the current one will do.
		ns = netns.None()
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("rawsock: opening rtnetlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(rtnlTimeout); err != nil {
		h.Close()
		ns.Close()
		return nil, fmt.Errorf("rawsock: rtnetlink socket timeout: %w", err)
	}
	n := &rtnl{ns: ns, h: h}
	// This thread is in ns already: subscribing here needs no switch
	// (and no privilege to make one).
	if err := n.subscribe(false); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// subscribe replaces the subscriptions. inNS switches into n.ns to
// open them, for callers on a thread that may be elsewhere.
func (n *rtnl) subscribe(inNS bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("rawsock: rtnetlink is closed")
	}
	n.unsubscribeLocked()
	s := &subscription{
		done:  make(chan struct{}),
		links: make(chan netlink.LinkUpdate, subscriptionQueue),
		addrs: make(chan netlink.AddrUpdate, subscriptionQueue),
		errc:  make(chan error, 1),
	}
	report := func(err error) {
		select {
		case s.errc <- err:
		default:
		}
	}
	var ns *netns.NsHandle
	if inNS && n.ns.IsOpen() {
		// Switching needs CAP_SYS_ADMIN, which a daemon with only the
		// capabilities of its job lacks: switch only when this thread
		// is elsewhere, and stay on it until the sockets are open.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cur, err := netns.Get()
		if err != nil || !cur.Equal(n.ns) {
			ns = &n.ns
		}
		cur.Close()
	}
	err := netlink.LinkSubscribeWithOptions(s.links, s.done, netlink.LinkSubscribeOptions{
		Namespace:         ns,
		ErrorCallback:     report,
		ReceiveBufferSize: rtnlReadBuffer,
	})
	if err != nil {
		close(s.done)
		return fmt.Errorf("rawsock: subscribing to rtnetlink link changes: %w", err)
	}
	err = netlink.AddrSubscribeWithOptions(s.addrs, s.done, netlink.AddrSubscribeOptions{
		Namespace:         ns,
		ErrorCallback:     report,
		ReceiveBufferSize: rtnlReadBuffer,
	})
	if err != nil {
		// Only the link subscription runs: its channel alone will
		// close.
		close(s.done)
		go func() {
			for range s.links {
			}
		}()
		return fmt.Errorf("rawsock: subscribing to rtnetlink address changes: %w", err)
	}
	n.sub = s
	return nil
}

func (n *rtnl) unsubscribeLocked() {
	if n.sub != nil {
		n.sub.stop()
		n.sub = nil
	}
}

// stop closes the subscription's sockets and lets the library's
// goroutines, which may be blocked handing over a notice, run to their
// end.
func (s *subscription) stop() {
	close(s.done)
	go func() {
		for range s.links {
		}
	}()
	go func() {
		for range s.addrs {
		}
	}()
}

func (n *rtnl) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.unsubscribeLocked()
	n.h.Close()
	n.ns.Close()
	return nil
}

// current returns the subscription in use, nil after a loss.
func (n *rtnl) current() *subscription {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sub
}

// errOverrun means notifications were lost: the tables must be read
// again.
var errOverrun = errors.New("rawsock: rtnetlink queue overrun")

// recvBatch is the most notices recv returns at once.
const recvBatch = 256

// recv waits for the next change and returns it with the others already
// waiting. The slice is valid until the next call. After errOverrun,
// sync must be called before recv again.
func (n *rtnl) recv(ctx context.Context) ([]nlMsg, error) {
	s := n.current()
	if s == nil {
		return nil, errOverrun
	}
	n.out = n.out[:0]
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case err := <-s.errc:
		return nil, n.lost(s, err)
	case u, ok := <-s.links:
		if !ok {
			return nil, n.lost(s, nil)
		}
		n.out = append(n.out, nlMsg{link: &u})
	case u, ok := <-s.addrs:
		if !ok {
			return nil, n.lost(s, nil)
		}
		n.out = append(n.out, nlMsg{addr: &u})
	}
	if err := n.drain(s, func(m nlMsg) { n.out = append(n.out, m) }, recvBatch); err != nil {
		return nil, err
	}
	return n.out, nil
}

// drain hands the notices already waiting on s to f, at most max of
// them.
func (n *rtnl) drain(s *subscription, f func(nlMsg), max int) error {
	for range max {
		select {
		case err := <-s.errc:
			return n.lost(s, err)
		case u, ok := <-s.links:
			if !ok {
				return n.lost(s, nil)
			}
			f(nlMsg{link: &u})
		case u, ok := <-s.addrs:
			if !ok {
				return n.lost(s, nil)
			}
			f(nlMsg{addr: &u})
		default:
			return nil
		}
	}
	return nil
}

// lost drops the subscription s, which failed or missed notices.
func (n *rtnl) lost(s *subscription, err error) error {
	n.mu.Lock()
	if n.sub == s {
		n.unsubscribeLocked()
	}
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %v", errOverrun, err)
	}
	return errOverrun
}

// sync reads the link and address tables into a fresh netState,
// subscribing again first if the subscriptions were dropped.
// Notifications that arrived meanwhile are applied in order, so the
// result is current when sync returns.
func (n *rtnl) sync(ctx context.Context) (*netState, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := n.current()
		if s == nil {
			if err := n.subscribe(true); err != nil {
				return nil, err
			}
			s = n.current()
		}
		st, err := n.trySync(s)
		if errors.Is(err, errOverrun) || errors.Is(err, netlink.ErrDumpInterrupted) {
			// The tables changed under the read, or notices
			// were lost: read them again.
			continue
		}
		return st, err
	}
}

func (n *rtnl) trySync(s *subscription) (*netState, error) {
	if s == nil {
		return nil, errors.New("rawsock: rtnetlink is closed")
	}
	links, err := n.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("rtnetlink link dump: %w", err)
	}
	addrs, err := n.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink address dump: %w", err)
	}
	st := newNetState()
	for _, l := range links {
		if a := l.Attrs(); a != nil {
			st.setLink(int32(a.Index), a.Name, a.RawFlags)
		}
	}
	for _, a := range addrs {
		if a.IPNet != nil {
			st.applyAddr(&netlink.AddrUpdate{LinkAddress: *a.IPNet, LinkIndex: a.LinkIndex, NewAddr: true})
		}
	}
	// Changes since the subscription began, some already in the
	// tables: applied in order, the last word is the kernel's.
	if err := n.drain(s, func(m nlMsg) { st.apply(&m) }, math.MaxInt); err != nil {
		return nil, err
	}
	return st, nil
}

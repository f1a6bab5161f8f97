package listener

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// A tcpLoop accepts on every TCP listener from one goroutine, in the
// order the kernel saw the connections arrive.
//
// A goroutine per listener does not keep that order: when connections to
// two ports are ready together, the Go scheduler may run the second
// port's goroutine first, and merge cannot repair it since TCP gives no
// kernel timestamp for a connection (UDP does). Sequences of quick knocks
// then fail at random: on loopback, about one round in a hundred of three
// connections in a row came out misordered, and some still did with half
// a millisecond between the connections on a busy machine. An
// edge-triggered epoll instance lists ready file descriptors in the order
// they became ready, so accepting in that order keeps the knocks' order.
type tcpLoop struct {
	epfd int
	evfd int // an eventfd that Close writes to; its epoll id is 0

	mu     sync.Mutex
	byID   map[int32]*polled
	bySock map[*sock]*polled
	nextID int32

	// lastAt is the arrival time given to the last connection, which
	// the next one must exceed: the accept order is the truth, and the
	// wall clock may step back. Only the loop goroutine uses it.
	lastAt int64
}

// A polled is a TCP listener in the loop.
type polled struct {
	sk *sock
	rc syscall.RawConn
	id int32 // the epoll event's data
	pz pauser
}

// runTCP starts the loop. s.mu is held.
func (s *Source) runTCP() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("listener: %w", os.NewSyscallError("epoll_create1", err))
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return fmt.Errorf("listener: %w", os.NewSyscallError("eventfd", err))
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return fmt.Errorf("listener: %w", os.NewSyscallError("epoll_ctl", err))
	}
	l := &tcpLoop{epfd: epfd, evfd: evfd, byID: map[int32]*polled{}, bySock: map[*sock]*polled{}}
	s.loop = l
	ctx, in := s.ctx, s.in
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveTCPLoop(ctx, in, l)
	}()
	return nil
}

// closeTCP tells the loop to end. s.mu is held; it is called once.
func (s *Source) closeTCP() {
	if s.loop == nil {
		return
	}
	var one [8]byte
	one[0] = 1 // any non-zero count; the loop only needs to wake
	unix.Write(s.loop.evfd, one[:])
}

// finishTCP releases the loop's descriptors once its goroutine has ended.
// Only then: Close may still write to the eventfd after the loop gave up
// on an error.
func (s *Source) finishTCP() {
	if s.loop != nil {
		unix.Close(s.loop.epfd)
		unix.Close(s.loop.evfd)
	}
}

// startTCP adds sk to the loop. s.mu is held and s.running is true.
func (s *Source) startTCP(sk *sock) {
	l := s.loop
	rc, err := sk.tcp.SyscallConn()
	if err == nil {
		l.mu.Lock()
		l.nextID++
		p := &polled{sk: sk, rc: rc, id: l.nextID}
		l.byID[p.id] = p
		l.bySock[sk] = p
		l.mu.Unlock()
		// Edge-triggered: a listener is reported again only when a new
		// connection arrives, so the ready list stays in arrival order.
		// Connections already waiting are reported at once.
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: p.id}
		cerr := rc.Control(func(fd uintptr) {
			err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.fail(fmt.Errorf("listener: %s: adding to epoll: %w", sk.key, err))
	}
}

// stopTCP removes sk from the loop. s.mu is held.
func (s *Source) stopTCP(sk *sock) {
	l := s.loop
	if l == nil {
		return
	}
	l.mu.Lock()
	p := l.bySock[sk]
	delete(l.bySock, sk)
	if p != nil {
		delete(l.byID, p.id)
	}
	l.mu.Unlock()
	if p != nil {
		p.rc.Control(func(fd uintptr) {
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
}

// A turn of the loop takes, from each listener reported ready, the
// connections it had queued when the turn began, in the order the
// listeners became ready. The kernel's accept queue of one listener is in
// arrival order; across listeners, the readiness order is the only order
// there is (TCP gives no timestamp for a connection). A knocker's knock on
// one port is queued before its next knock on another arrives, so its
// listener turns ready first, unless it was ready already; taking every
// queued connection of a listener before the next listener's keeps the
// two in order. Taking a fixed number per listener and turn (64, once)
// did not: after a stall with a backlog on the first port, a knocker's
// second and third knocks were accepted before its first.
//
// A flood on one port cannot starve the others: a turn takes at most
// what was queued when it began, which the listen backlog bounds.

// acceptUnknown is how many connections a listener whose queue length
// cannot be read may give in a row before the others get a turn.
const acceptUnknown = 64

type acceptState int

const (
	acceptDone   acceptState = iota // the queued connections are taken, or the listener is gone
	acceptMore                      // acceptUnknown reached; more may wait
	acceptFailed                    // an error such as EMFILE; try again later
)

// tcpListen is TCP_LISTEN of include/net/tcp_states.h.
const tcpListen = 10

// queued returns how many connections wait in p's accept queue, or -1 if
// that cannot be read. For a listening socket, Linux reports the accept
// queue's length in tcp_info's unacked field (what ss shows as Recv-Q).
func (p *polled) queued() int {
	n := -1
	p.rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil && info.State == tcpListen {
			n = int(info.Unacked)
		}
	})
	return n
}

func (s *Source) serveTCPLoop(ctx context.Context, in chan<- knock, l *tcpLoop) {
	events := make([]unix.EpollEvent, 64)
	var todo, again, retry []*polled
	var counts []int
	var retryAt time.Time
	for {
		timeout := -1
		switch {
		case len(again) > 0:
			timeout = 0
		case len(retry) > 0:
			timeout = max(1, int(time.Until(retryAt).Milliseconds())+1)
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			s.fail(fmt.Errorf("listener: waiting for TCP connections: %w", os.NewSyscallError("epoll_wait", err)))
			return
		}
		// Listeners left with connections waiting go first: those
		// connections came before anything reported now.
		todo = append(todo[:0], again...)
		again = again[:0]
		if len(retry) > 0 && !time.Now().Before(retryAt) {
			todo = append(todo, retry...)
			retry = retry[:0]
		}
		for _, ev := range events[:n] {
			if ev.Fd == 0 {
				return // Close
			}
			l.mu.Lock()
			p := l.byID[ev.Fd]
			l.mu.Unlock()
			if p != nil && !slices.Contains(todo, p) { // nil: removed by Update since
				todo = append(todo, p)
			}
		}
		// Read every queue's length before accepting anything, so that
		// connections that come during the turn wait for the next one
		// (edge-triggered epoll reports their listener again).
		counts = counts[:0]
		for _, p := range todo {
			counts = append(counts, p.queued())
		}
		for i, p := range todo {
			switch s.acceptSome(ctx, in, l, p, counts[i]) {
			case acceptMore:
				again = append(again, p)
			case acceptFailed:
				retry = append(retry, p)
				retryAt = time.Now().Add(p.pz.delay)
			}
		}
	}
}

// acceptSome accepts and resets the queued connections on p (acceptUnknown
// of them when queued is negative, since the length is unknown), reporting
// each as a knock.
func (s *Source) acceptSome(ctx context.Context, in chan<- knock, l *tcpLoop, p *polled, queued int) acceptState {
	sk := p.sk
	limit, more := queued, acceptDone
	if queued < 0 {
		limit, more = acceptUnknown, acceptMore
	}
	for range limit {
		var nfd int
		var sa unix.Sockaddr
		var aerr error
		// Control holds a reference to the descriptor, so a concurrent
		// Close by Update waits for the accept to finish and the number
		// cannot be reused under it. The listener is non-blocking (Go
		// made it so), so accept4 returns at once. (A listener's
		// RawConn has no Read.)
		err := p.rc.Control(func(fd uintptr) {
			nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
		})
		if err != nil {
			return acceptDone // closed
		}
		switch aerr {
		case nil:
		case unix.EAGAIN:
			return acceptDone
		case unix.EINTR, unix.ECONNABORTED, unix.EPERM:
			// EPERM: a firewall rule refused this connection.
			continue
		default:
			if sk.stopping() {
				return acceptDone
			}
			p.pz.failed(s, sk.key, "accept", os.NewSyscallError("accept4", aerr))
			return acceptFailed
		}
		now := time.Now()
		l.lastAt = max(now.UnixNano(), l.lastAt+1)
		var dst netip.Addr
		if lsa, err := unix.Getsockname(nfd); err == nil {
			dst = sockaddrAddr(lsa)
		}
		// Linger 0 makes close send a RST and free the socket at once,
		// instead of a FIN and TIME_WAIT for every knock.
		unix.SetsockoptLinger(nfd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(nfd)
		s.accepted.Add(1)
		p.pz.ok(s, sk.key)
		src := sockaddrAddr(sa)
		if !src.IsValid() {
			continue
		}
		if !dst.IsValid() {
			dst = sk.key.addr.WithZone("")
		}
		if !s.emit(ctx, in, sk, capture.Event{Time: now, Src: src, Dst: dst, Port: sk.key.port, Proto: wire.TCP, Flags: wire.SYN}, l.lastAt) {
			return acceptDone
		}
	}
	return more
}

// sockaddrAddr returns the address of sa, unmapped and without a zone.
func sockaddrAddr(sa unix.Sockaddr) netip.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

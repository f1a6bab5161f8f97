package netlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// queueLen bounds the packets in flight each way. At 20 ms this is
// about 200,000 packets a second, far beyond what a test sends; a packet
// that finds the queue full is dropped, as a router's would be.
const queueLen = 4096

// readSize is the buffer each relay reads into: room for any packet,
// whatever MTU a test gives the devices.
const readSize = 65536

// DelayConfig describes a DelayLink.
type DelayConfig struct {
	Addressing
	// Delay is how long each packet is held, each way. Zero forwards at
	// once.
	Delay time.Duration
	// Loss is the fraction of packets dropped at random, each way, from
	// 0 (none, the zero value) to 1 (all).
	Loss float64
}

// DelayLink joins two namespaces through a TUN device in each (tun0,
// tun1, ... in each): this process reads every packet one device sends,
// holds it for the delay, and writes it to the other device. Order is
// kept. It works where the kernel has no netem qdisc.
type DelayLink struct {
	A, B Endpoint

	cfg    DelayConfig
	cancel context.CancelFunc
	files  [2]*os.File
	wg     sync.WaitGroup
	dirs   [2]direction // 0: A to B, 1: B to A

	closeOnce sync.Once
	closeErr  error
	errMu     sync.Mutex
	err       error // the first unexpected relay error
}

// direction holds one way's counters.
type direction struct {
	forwarded, lost, dropped atomic.Uint64
}

// Counters count one direction's packets.
type Counters struct {
	Forwarded uint64 // written to the other device after the delay
	Lost      uint64 // dropped on purpose (DelayConfig.Loss)
	Dropped   uint64 // dropped because the queue was full or a write failed
}

// Stats are a DelayLink's packet counters.
type Stats struct {
	AToB, BToA Counters
}

// NewDelayLink joins a and b with a delay link as cfg says. The devices
// are up and addressed when it returns; the relay stops, and the devices
// disappear, at Close or when the test ends.
func NewDelayLink(t testing.TB, a, b *Netns, cfg DelayConfig) *DelayLink {
	t.Helper()
	Require(t)
	if a == b {
		t.Fatalf("netlab: a delay link needs two namespaces")
	}
	if cfg.Delay < 0 || cfg.Loss < 0 || cfg.Loss > 1 {
		t.Fatalf("netlab: bad delay link %+v: want Delay >= 0, 0 <= Loss <= 1", cfg)
	}
	addr, err := cfg.Addressing.resolve()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	cfg.Addressing = addr
	l := &DelayLink{
		A:   Endpoint{NS: a, Dev: a.nextDev("tun"), Addr: addr.A, Addr6: addr.A6},
		B:   Endpoint{NS: b, Dev: b.nextDev("tun"), Addr: addr.B, Addr6: addr.B6},
		cfg: cfg,
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	for i, e := range []Endpoint{l.A, l.B} {
		f, err := openTun(e.NS.name, e.Dev)
		if err != nil {
			t.Fatal(err)
		}
		l.files[i] = f
	}
	if err := configureLink(l.A, l.B); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.start(ctx, l.files[0], l.files[1], &l.dirs[0])
	l.start(ctx, l.files[1], l.files[0], &l.dirs[1])
	return l
}

// packet is one packet in flight.
type packet struct {
	due  time.Time
	data []byte
}

// start relays packets from in to out: one goroutine reads and stamps
// them, one writes them out when they are due. The queue between them is
// a FIFO, which is also time order since every packet waits the same.
func (l *DelayLink) start(ctx context.Context, in, out *os.File, d *direction) {
	q := make(chan packet, queueLen)
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		buf := make([]byte, readSize)
		for {
			n, err := in.Read(buf)
			if err != nil {
				if ctx.Err() == nil {
					l.fail(fmt.Errorf("relay reading %s: %w", in.Name(), err))
				}
				return
			}
			due := time.Now().Add(l.cfg.Delay)
			if l.cfg.Loss > 0 && rand.Float64() < l.cfg.Loss {
				d.lost.Add(1)
				continue
			}
			select {
			case q <- packet{due: due, data: append([]byte(nil), buf[:n]...)}:
			default:
				d.dropped.Add(1)
			}
		}
	}()
	go func() {
		defer l.wg.Done()
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			var p packet
			select {
			case p = <-q:
			case <-ctx.Done():
				return
			}
			if wait := time.Until(p.due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			if _, err := out.Write(p.data); err != nil {
				if ctx.Err() != nil {
					return
				}
				// One bad packet is no reason to stop the link, but the
				// test should hear of it.
				d.dropped.Add(1)
				l.fail(fmt.Errorf("relay writing %s: %w", out.Name(), err))
				continue
			}
			d.forwarded.Add(1)
		}
	}()
}

func (l *DelayLink) fail(err error) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

// Stats returns the packets counted so far each way. It may be called at
// any time, after Close too.
func (l *DelayLink) Stats() Stats {
	c := func(d *direction) Counters {
		return Counters{Forwarded: d.forwarded.Load(), Lost: d.lost.Load(), Dropped: d.dropped.Load()}
	}
	return Stats{AToB: c(&l.dirs[0]), BToA: c(&l.dirs[1])}
}

// Close stops the relay, waits for its goroutines, and closes the
// devices, which removes them. It returns the first error the relay met
// (a packet it could not read or write), if any. Close is idempotent.
func (l *DelayLink) Close() error {
	l.closeOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
		}
		var errs []error
		for _, f := range l.files {
			if f != nil {
				// Interrupts a blocked Read: the files are pollable.
				if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
		l.wg.Wait()
		l.errMu.Lock()
		errs = append([]error{l.err}, errs...)
		l.errMu.Unlock()
		l.closeErr = errors.Join(errs...)
		if l.closeErr != nil {
			l.closeErr = fmt.Errorf("delay link %s/%s-%s/%s: %w", l.A.NS, l.A.Dev, l.B.NS, l.B.Dev, l.closeErr)
		}
	})
	return l.closeErr
}

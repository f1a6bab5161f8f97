//go:build linux

package rawsock

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/knock-go/knock/capture"
	"golang.org/x/sys/unix"
)

// startReadersLocked starts a reader for every socket that lacks one,
// while Run runs.
func (s *Source) startReadersLocked() {
	r := s.sys.run
	if r == nil || r.stopping {
		return
	}
	for _, k := range s.sys.socks {
		if _, ok := r.readers[k]; ok {
			continue
		}
		r.readers[k] = struct{}{}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := s.read(r, k); err != nil {
				r.fail(err)
			}
			// A socket replaced during the run (an interface that
			// came back) must not stay here for the rest of it.
			s.sys.mu.Lock()
			delete(r.readers, k)
			s.sys.mu.Unlock()
		}()
	}
}

// read is a socket's reader: it delivers the knocks it reads to r.out
// until the run ends or the socket is closed.
func (s *Source) read(r *runState, k *sock) error {
	if !k.acquire() {
		return nil
	}
	defer k.release()
	bt := batcher{s: s, r: r}
	defer bt.close()
	if k.ring == nil && k.ringErr != nil {
		s.logf("%s: no receive ring (%v): reading one packet per system call", k.key, k.ringErr)
	}
	// done says whether err from the socket ends the reader, and with
	// what.
	done := func(err error) (bool, error) {
		switch {
		case r.ctx.Err() != nil || k.gone.Load():
			return true, nil
		case err == errWoken:
			return false, nil
		case errors.Is(err, unix.ENETDOWN):
			// The interface went down; the socket carries on when
			// it comes back up.
			return false, nil
		case k.key.name != "" && (errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)):
			// The interface is gone; rtnetlink tells the watcher,
			// which opens a new socket if it returns.
			return true, nil
		}
		return true, fmt.Errorf("rawsock: reading %s: %w", k.key, err)
	}
	var last time.Time // when the socket was last emptied
	for {
		if err := k.wait(); err != nil {
			if stop, err := done(err); stop {
				return err
			}
			continue
		}
		if r.ctx.Err() != nil || k.gone.Load() {
			return nil
		}
		if gap := time.Since(last); gap < minWakeGap {
			// Packets are coming fast: let them gather rather
			// than waking for every few of them.
			time.Sleep(minWakeGap - gap)
		}
		var ok bool
		var err error
		if k.ring != nil {
			ok = drainRing(k, &bt)
		} else {
			ok, err = drainQueue(k, &bt)
		}
		if !ok || !bt.flush() {
			return nil
		}
		if err != nil {
			if stop, err := done(err); stop {
				return err
			}
		}
		last = time.Now()
	}
}

// drainRing reads every packet in the ring, until the socket is closed.
// It hands over what it read at least every batchSize packets, so that a
// flood of packets that are no knock still lets the run end and the
// counters move. It returns false when the run has ended or the socket
// is closed.
func drainRing(k *sock, bt *batcher) bool {
	rg := k.ring
	for n := 1; rg.ready(); n++ {
		if k.gone.Load() {
			return false
		}
		b, pkttype, proto, at := rg.next()
		ok := bt.add(b, pkttype, proto, at)
		rg.release()
		if !ok || n%batchSize == 0 && !bt.flush() {
			return false
		}
	}
	return true
}

// drainQueue is drainRing without a ring: one recvfrom(2) per packet.
// It also returns the socket's error, if reading met one.
func drainQueue(k *sock, bt *batcher) (bool, error) {
	for n := 1; ; n++ {
		if k.gone.Load() {
			return false, nil
		}
		ok, err := k.recv()
		if err != nil || !ok {
			return true, err
		}
		b, pkttype, proto := k.packet()
		if !bt.add(b, pkttype, proto, 0) || n%batchSize == 0 && !bt.flush() {
			return false, nil
		}
	}
}

// batchSize is the most events a reader hands over at once.
const batchSize = 256

// maxAge bounds how long ago an event may be dated, by the kernel's
// timestamp, before the batch it is read in: the ring holds well under a
// second of a flood, so more is a wall clock step, not a wait.
const maxAge = time.Second

// minWakeGap is the shortest time between two wake-ups of a reader. A
// packet that comes after a quiet spell is read at once; packets that
// follow it within minWakeGap wait for the rest of it, and are read
// together. Under a flood a reader then wakes about a thousand times a
// second, with hundreds of packets each time (which the ring holds many
// times over), rather than for every few packets: each wake-up costs
// more than a hundred packets do. A sleep this short lasts about a
// millisecond: the Go runtime's timers wait in whole milliseconds when
// idle.
const minWakeGap = time.Millisecond

// batcher turns a reader's packets into batches of events, and counts
// them. It reads the clock, the tables and the counters once per batch
// rather than once per packet.
type batcher struct {
	s      *Source
	r      *runState
	b      *capture.Batch
	now    time.Time
	nowNs  int64 // now as wall-clock nanoseconds
	tables *tables
	view   *netView
	seen   int // packets since now, tables and view were read
	counts [3]uint64
}

// add judges one packet and keeps its event. at is when the kernel
// received the packet (wall clock, nanoseconds since 1970), 0 if unknown.
// It returns false when the run has ended.
func (bt *batcher) add(b []byte, pkttype uint8, proto uint16, at int64) bool {
	if bt.seen == 0 {
		bt.now = time.Now()
		bt.nowNs = bt.now.UnixNano()
		bt.tables, bt.view = bt.s.tables.Load(), bt.s.view.Load()
	}
	if bt.seen++; bt.seen == batchSize {
		bt.seen = 0
	}
	ev, v := judge(b, pkttype, proto, bt.tables, bt.view)
	bt.counts[v]++
	if v != verdictEvent {
		return true
	}
	if bt.b == nil {
		if bt.b = bt.r.pool.Get(bt.r.ctx); bt.b == nil {
			return false
		}
	}
	ev.Time = bt.now
	if at != 0 {
		// A packet that waited in the ring (the matcher was slow to
		// take its batches) keeps the time it arrived, so that
		// Seq_Timeout counts from there. The kernel's clock is the
		// wall clock: only its distance to now is used, bounded, so
		// that the event keeps the monotonic clock reading of now and
		// a wall clock step changes nothing.
		if age := bt.nowNs - at; age > 0 {
			ev.Time = bt.now.Add(-time.Duration(min(age, int64(maxAge))))
		}
	}
	bt.b.Events = append(bt.b.Events, ev)
	if len(bt.b.Events) == cap(bt.b.Events) {
		return bt.flush()
	}
	return true
}

// flush sends the events gathered so far and publishes the counts. It
// returns false when the run has ended.
func (bt *batcher) flush() bool {
	bt.seen = 0
	bt.publish()
	if bt.r.ctx.Err() != nil {
		return false
	}
	if bt.b == nil || len(bt.b.Events) == 0 {
		return true
	}
	select {
	case bt.r.out <- bt.b:
		bt.b = nil
		// The send made the matcher ready to run on this thread's
		// processor, which the reader would keep, waiting in poll(2)
		// (a system call), until another thread is woken to take the
		// matcher over: tens of microseconds on a virtual machine.
		// Yielding runs it now.
		runtime.Gosched()
		return true
	case <-bt.r.ctx.Done():
		return false
	}
}

func (bt *batcher) publish() {
	c := &bt.counts
	if n := c[verdictEvent] + c[verdictMalformed] + c[verdictIgnored]; n > 0 {
		bt.s.received.Add(n)
		bt.s.events.Add(c[verdictEvent])
		bt.s.malformed.Add(c[verdictMalformed])
		bt.s.ignored.Add(c[verdictIgnored])
		*c = [3]uint64{}
	}
}

// close gives back the batch the reader still holds.
func (bt *batcher) close() {
	bt.publish()
	if bt.b != nil {
		bt.b.Release()
		bt.b = nil
	}
}

// batchesPerRun is the number of batches the readers of a run share: up
// to 4,096 events on their way to the matcher.
const batchesPerRun = 16

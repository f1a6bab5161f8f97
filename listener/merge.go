package listener

import (
	"container/heap"
	"context"
	"time"

	"github.com/knock-go/knock/capture"
)

// DefaultHold is the Hold used when Options.Hold is zero.
const DefaultHold = 10 * time.Millisecond

// A knock is an event on its way to merge.
type knock struct {
	ev capture.Event
	// at is when the packet arrived, in wall-clock nanoseconds: the
	// kernel's receive timestamp for UDP where the system gives one, the
	// time of accept for TCP. It orders knocks in merge. It is not
	// ev.Time, which keeps a monotonic clock reading and so cannot be
	// compared with kernel timestamps: in virtual machines the wall
	// clock moves against the monotonic one by tens of microseconds,
	// more than the gap between two knocks of a burst.
	at int64
}

// merge puts the knocks of the socket goroutines back in the order they
// arrived, and sends them on out.
//
// Each UDP socket has its own goroutine, and the Go scheduler often runs
// the goroutines of sockets that became ready together in another order
// than the packets came (a burst of UDP knocks on three ports came out
// reversed nine times in ten), which would break sequences. So each knock
// is held for hold after it reaches merge, and knocks leave in the order
// of their arrival time. A knock held up for longer than hold leaves late,
// out of order. Times on out never go backwards: a knock that leaves
// after one with a later Time gets that Time.
func (s *Source) merge(ctx context.Context, in <-chan knock, out chan<- *capture.Batch, hold time.Duration) {
	// Batches come from a pool of their own; waiting for one ends with
	// the source, like any other wait here.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	pool := capture.NewPool(mergeBatches, mergeBatchSize)
	var h held
	var seq uint64
	var last time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// pass sends the knocks that are due, as few batches as they fit in.
	pass := func() bool {
		now := time.Now()
		var b *capture.Batch
		for len(h) > 0 && !now.Before(h[0].due) {
			if b == nil {
				if b = pool.Get(ctx); b == nil {
					return false
				}
			}
			ev := heap.Pop(&h).(heldKnock).ev
			if ev.Time.Before(last) {
				ev.Time = last
			}
			last = ev.Time
			b.Events = append(b.Events, ev)
			if len(b.Events) == cap(b.Events) {
				if !s.sendBatch(ctx, out, b) {
					return false
				}
				b = nil
				now = time.Now()
			}
		}
		return b == nil || s.sendBatch(ctx, out, b)
	}
	for {
		if !pass() {
			s.dropped.Add(uint64(len(h)))
			return
		}
		var tick <-chan time.Time
		if len(h) > 0 {
			timer.Reset(time.Until(h[0].due))
			tick = timer.C
		}
		select {
		case k := <-in:
			seq++
			heap.Push(&h, heldKnock{knock: k, due: time.Now().Add(hold), seq: seq})
		case <-tick:
		case <-ctx.Done():
			s.dropped.Add(uint64(len(h)))
			return
		}
	}
}

// The batches merge hands over: knocks come at the rate of connections
// and datagrams, never in the thousands at once.
const (
	mergeBatches   = 4
	mergeBatchSize = 64
)

// sendBatch sends b on out; if it cannot, it counts b's events as dropped
// and releases it.
func (s *Source) sendBatch(ctx context.Context, out chan<- *capture.Batch, b *capture.Batch) bool {
	n := len(b.Events)
	if send(s, ctx, out, nil, b) {
		return true
	}
	// send counted one.
	s.dropped.Add(uint64(n - 1))
	b.Release()
	return false
}

// emit passes a knock that arrived at at (wall-clock nanoseconds) to
// merge, waiting for room; see Run for why it waits. It reports whether
// the knock was passed on.
func (s *Source) emit(ctx context.Context, in chan<- knock, sk *sock, ev capture.Event, at int64) bool {
	return send(s, ctx, in, sk.stop, knock{ev: ev, at: at})
}

// send sends v on ch, waiting for room until ctx ends, the source is
// closed or stop is closed. It reports whether v was sent.
func send[T any](s *Source, ctx context.Context, ch chan<- T, stop <-chan struct{}, v T) bool {
	select {
	case ch <- v:
		return true
	default:
	}
	s.waited.Add(1)
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
	case <-s.done:
	case <-stop:
	}
	s.dropped.Add(1)
	return false
}

type heldKnock struct {
	knock
	due time.Time
	seq uint64 // keeps knocks that arrived at the same time in the order they came
}

// held is a min-heap of knocks by arrival.
type held []heldKnock

func (h held) Len() int { return len(h) }
func (h held) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h held) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *held) Push(x any)   { *h = append(*h, x.(heldKnock)) }
func (h *held) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

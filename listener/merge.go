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
func (s *Source) merge(ctx context.Context, in <-chan knock, out chan<- capture.Event, hold time.Duration) {
	var h held
	var seq uint64
	var last time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		for len(h) > 0 && !now.Before(h[0].due) {
			ev := heap.Pop(&h).(heldKnock).ev
			if ev.Time.Before(last) {
				ev.Time = last
			}
			last = ev.Time
			if !send(s, ctx, out, nil, ev) {
				s.dropped.Add(uint64(len(h)))
				return
			}
			now = time.Now()
		}
		var tick <-chan time.Time
		if len(h) > 0 {
			timer.Reset(h[0].due.Sub(now))
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
		case <-s.done:
			s.dropped.Add(uint64(len(h)))
			return
		}
	}
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

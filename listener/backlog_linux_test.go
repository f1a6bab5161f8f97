package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/wire"
)

// dialHeld completes a TCP handshake from src to dst:p and keeps the
// connection: the kernel queues it for accept whether or not the loop
// accepts it now. The test closes it at the end.
func dialHeld(t *testing.T, src, dst netip.Addr, p uint16) {
	t.Helper()
	d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	c, err := d.Dial("tcp", netip.AddrPortFrom(dst, p).String())
	if errors.Is(err, syscall.ECONNRESET) {
		return // accepted and reset before Dial returned
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

// A knocker's knocks keep their order when the accept loop was stalled
// and the first port has a backlog of other connections: the loop used to
// take 64 connections of one listener per turn, so the knocker's second
// and third knocks were accepted before its first.
func TestOrderWithBacklog(t *testing.T) {
	t.Parallel()
	needLinux(t)
	// No hold: knocks leave in the order the loop accepts them, and merge
	// blocks on the first one while nobody reads.
	s, p := newSource(t, 3, Options{Hold: -1}, func(p []uint16) capture.Spec {
		var spec capture.Spec
		for _, n := range p {
			spec.Ports = append(spec.Ports, targeted(wire.TCP, n, lo4))
		}
		return spec
	})
	batches := make(chan *capture.Batch) // read only once the backlog is built
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, batches) }()

	// Stall the loop: with nobody reading, merge blocks on the first
	// knock, its input fills, and the loop waits with a knock in its
	// hands.
	const fill = 600
	for range fill {
		dialHeld(t, lo4, lo4, p[0])
	}
	for deadline, last := time.Now().Add(timeout), uint64(0); ; {
		time.Sleep(50 * time.Millisecond)
		n := s.Stats().Accepted
		if n == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the accept loop did not stall: %+v", s.Stats())
		}
		last = n
	}
	if st := s.Stats(); st.Accepted >= fill {
		t.Fatalf("the accept loop did not stall: %d dialed, %+v", fill, st)
	}
	// A backlog on the first port, then the knocker.
	for range 100 {
		dialHeld(t, lo4, lo4, p[0])
	}
	for _, n := range p {
		dialHeld(t, lo4b, lo4, n)
	}

	var got []uint16
	for deadline := time.After(timeout); len(got) < len(p); {
		select {
		case b := <-batches:
			for _, ev := range b.Events {
				if ev.Src == lo4b {
					got = append(got, ev.Port)
				}
			}
			b.Release()
		case <-deadline:
			t.Fatalf("the knocker's knocks did not all come: got %v, %+v", got, s.Stats())
		}
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("the knocker's knock order (-want +got):\n%s", diff)
	}
	cancel()
	go func() {
		for b := range batches {
			b.Release()
		}
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(timeout):
		t.Error("Run did not return after cancel")
	}
	close(batches)
}

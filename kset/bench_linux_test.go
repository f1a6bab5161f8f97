package kset

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/knock-go/knock/config"
)

// BenchmarkOpenToKernel times the package's own part of an opening: from
// Open to the element's NFT_MSG_NEWSETELEM notification, one new
// knocker at a time, in a namespace of its own (root only): back to
// back, and with 2 ms of idle before each (as knocks come), where the
// worker and the monitor are asleep and must be woken. It reports the
// median and the 99th percentile.
func BenchmarkOpenToKernel(b *testing.B) {
	for _, idle := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run("idle="+idle.String(), func(b *testing.B) { benchOpen(b, idle) })
	}
}

func benchOpen(b *testing.B, idle time.Duration) {
	_, fd := labNetns(b)
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		b.Fatal(err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectElements), nftables.WithMonitorAction(nftables.MonitorActionNew))
	ch, err := c.AddGenerationalMonitor(mon)
	if err != nil {
		b.Fatal(err)
	}
	defer mon.Close()
	d := door("ssh4", "", time.Minute)
	s, err := New([]*config.Door{d}, Options{NetNSFd: fd})
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("198.18.1.0")
	var ds []time.Duration
	for b.Loop() {
		if idle > 0 {
			b.StopTimer()
			time.Sleep(idle)
			b.StartTimer()
		}
		a = a.Next()
		t0 := time.Now()
		s.Open(d, a, "", t0)
		<-ch
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "µs-median")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "µs-p99")
}

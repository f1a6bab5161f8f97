package knockd

import (
	"sync"
	"time"

	"github.com/knock-go/knock/internal/klog"
)

// stageLinesPerSecond is how many "Stage N" lines are logged in one
// second before the rest are only counted.
const stageLinesPerSecond = 50

// floodGate lets through at most stageLinesPerSecond stage lines a
// second and summarises the rest once the second is over. It arms a timer
// only while it is suppressing, so an idle daemon never wakes up.
type floodGate struct {
	log        *klog.Logger
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
	timer      *time.Timer
}

func newFloodGate(log *klog.Logger) *floodGate { return &floodGate{log: log} }

func (g *floodGate) allow() bool {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.window) >= time.Second {
		g.window, g.n = now, 0
	}
	g.n++
	if g.n <= stageLinesPerSecond {
		return true
	}
	if g.suppressed == 0 && g.timer == nil {
		g.timer = time.AfterFunc(time.Second, g.report)
	}
	g.suppressed++
	return false
}

func (g *floodGate) report() {
	g.mu.Lock()
	n := g.suppressed
	g.suppressed = 0
	g.timer = nil
	g.mu.Unlock()
	if n > 0 {
		g.log.Log("%d stage messages suppressed in the last second", n)
	}
}

func (g *floodGate) close() {
	g.mu.Lock()
	t := g.timer
	g.mu.Unlock()
	if t != nil && t.Stop() {
		g.report()
	}
}

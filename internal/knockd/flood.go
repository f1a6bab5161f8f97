package knockd

import (
	"sync"
	"time"

	"github.com/knock-go/knock/internal/klog"
)

// linesPerSecond is how many lines of one chatty kind ("Stage N",
// "sequence timeout") are logged in one second before the rest are only
// counted.
const linesPerSecond = 50

// Chatty kinds of log line: one per packet, or one per attempt, so a
// spoofed flood makes as many. Evictions are never logged one by one,
// only counted and summarised.
const (
	stageLines = iota
	timeoutLines
	evictions
	explainLines // -D only
	chattyKinds
)

var chattyNames = [chattyKinds]string{"stage", "timeout", "eviction", "explanation"}

// summaries are the lines that report what was suppressed, by kind.
var summaries = [chattyKinds]string{
	"%d stage messages suppressed in the last second",
	"%d timeout messages suppressed in the last second",
	"%d knock attempts evicted in the last second: more attempts in progress than MaxAttempts, the oldest at stage 1 made room",
	"%d explanations (-D) suppressed in the last second",
}

// floodGate lets through at most linesPerSecond lines of each chatty
// kind a second and summarises the rest once the second is over. It arms
// a timer only while it is suppressing, so an idle daemon never wakes up.
// OPEN SESAME, command and error lines never go through it.
type floodGate struct {
	log        *klog.Logger
	mu         sync.Mutex
	window     [chattyKinds]time.Time
	n          [chattyKinds]int
	suppressed [chattyKinds]int
	timer      *time.Timer
}

func newFloodGate(log *klog.Logger) *floodGate { return &floodGate{log: log} }

// allow reports whether a line of the kind may be logged now.
func (g *floodGate) allow(kind int) bool {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.window[kind]) >= time.Second {
		g.window[kind], g.n[kind] = now, 0
	}
	g.n[kind]++
	if g.n[kind] <= linesPerSecond {
		return true
	}
	if g.timer == nil {
		g.timer = time.AfterFunc(time.Second, g.report)
	}
	g.suppressed[kind]++
	return false
}

// count adds n events of the kind, none of them logged, to the summary.
func (g *floodGate) count(kind, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer == nil {
		g.timer = time.AfterFunc(time.Second, g.report)
	}
	g.suppressed[kind] += n
}

func (g *floodGate) report() {
	g.mu.Lock()
	n := g.suppressed
	g.suppressed = [chattyKinds]int{}
	g.timer = nil
	g.mu.Unlock()
	for kind, c := range n {
		switch {
		case c > 0 && kind == explainLines:
			g.log.Debugf(summaries[kind], c)
		case c > 0:
			g.log.Log(summaries[kind], c)
		}
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

package knockd

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/match"
)

// doorCounters count one door's actions since start. The matcher's
// goroutine adds to them; readers load them at any time.
type doorCounters struct {
	stages, opens, timeouts atomic.Uint64
}

// counters holds the doors' counters by name, so that a door keeps its
// counts across reloads. The matcher's goroutine finds a door's counters
// through a cache by pointer (no lock); readers list them under mu.
type counters struct {
	mu     sync.Mutex
	byName map[string]*doorCounters

	// Owned by the matcher's goroutine.
	last      *config.Door
	lastC     *doorCounters
	byPointer map[*config.Door]*doorCounters
}

func newCounters() *counters {
	return &counters{byName: map[string]*doorCounters{}, byPointer: map[*config.Door]*doorCounters{}}
}

// count counts the actions of one batch. It runs on the matcher's
// goroutine, before the flood gate thins out their lines.
func (c *counters) count(acts []match.Action) {
	for i := range acts {
		a := &acts[i]
		var n *atomic.Uint64
		switch a.Kind {
		case match.Stage:
			n = &c.of(a.Door).stages
		case match.Open:
			n = &c.of(a.Door).opens
		case match.Timeout:
			n = &c.of(a.Door).timeouts
		default:
			continue
		}
		n.Add(1)
	}
}

// of returns d's counters. Matcher's goroutine only.
func (c *counters) of(d *config.Door) *doorCounters {
	if d == c.last {
		return c.lastC
	}
	dc := c.byPointer[d]
	if dc == nil {
		if len(c.byPointer) > 1024 {
			// Reloads and one-time sequences leave doors behind.
			clear(c.byPointer)
		}
		c.mu.Lock()
		if dc = c.byName[d.Name]; dc == nil {
			dc = &doorCounters{}
			c.byName[d.Name] = dc
		}
		c.mu.Unlock()
		c.byPointer[d] = dc
	}
	c.last, c.lastC = d, dc
	return dc
}

// doorCount is a door's counts at one moment.
type doorCount struct {
	name                    string
	stages, opens, timeouts uint64
}

// snapshot returns every door's counts, by name.
func (c *counters) snapshot() []doorCount {
	c.mu.Lock()
	out := make([]doorCount, 0, len(c.byName))
	for name, dc := range c.byName {
		out = append(out, doorCount{name, dc.stages.Load(), dc.opens.Load(), dc.timeouts.Load()})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b doorCount) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}

// ofName returns the counts of the door called name, zero if none.
func (c *counters) ofName(name string) doorCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	dc := c.byName[name]
	if dc == nil {
		return doorCount{name: name}
	}
	return doorCount{name, dc.stages.Load(), dc.opens.Load(), dc.timeouts.Load()}
}

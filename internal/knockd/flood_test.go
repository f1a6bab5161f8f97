package knockd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/knock-go/knock/internal/klog"
)

// testGate returns a flood gate that logs to the buffer.
func testGate() (*floodGate, *bytes.Buffer) {
	var out bytes.Buffer
	return newFloodGate(klog.New(klog.Options{Verbose: &out})), &out
}

func TestFloodGateSummarisesEachKind(t *testing.T) {
	g, out := testGate()
	allowed := [chattyKinds]int{}
	for i := 0; i < 500; i++ {
		for kind := range chattyKinds {
			if g.allow(kind) {
				allowed[kind]++
			}
		}
	}
	g.close()
	for kind := range chattyKinds {
		if allowed[kind] != linesPerSecond {
			t.Errorf("%s: %d lines allowed in a burst, want %d", chattyNames[kind], allowed[kind], linesPerSecond)
		}
	}
	for _, want := range []string{"450 stage messages suppressed in the last second", "450 timeout messages suppressed in the last second"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary %q missing from:\n%s", want, out.String())
		}
	}
}

func TestFloodGateSummarisesEvictions(t *testing.T) {
	g, out := testGate()
	g.count(evictions, 1000)
	g.count(evictions, 234)
	g.close()
	want := "1234 knock attempts evicted in the last second: more attempts in progress than MaxAttempts, the oldest at stage 1 made room\n"
	if out.String() != want {
		t.Errorf("logged %q, want %q", out.String(), want)
	}
}

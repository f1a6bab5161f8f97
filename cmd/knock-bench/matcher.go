//go:build linux

package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// benchLine is one Go benchmark's figures.
type benchLine struct {
	name      string  // without "Benchmark"
	nsPerOp   float64 // ns/op
	eventsSec float64 // events/s, reported by the benchmark
	bytesOp   float64 // B/op
	allocsOp  float64 // allocs/op
}

var benchRE = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// runMatcherBench runs the matcher's benchmarks on one core
// (GOMAXPROCS=1) and returns their lines.
func runMatcherBench(ctx context.Context, root, benchtime string) ([]benchLine, error) {
	out, err := goCmd(ctx, root, "test", "-run", "^$", "-bench", "BenchmarkHandle|BenchmarkFlood",
		"-benchmem", "-cpu", "1", "-count", "1", "-benchtime", benchtime, "./match/")
	if err != nil {
		return nil, fmt.Errorf("matcher benchmarks: %w\n%s", err, out)
	}
	lines := parseBench(out)
	if len(lines) == 0 {
		return nil, fmt.Errorf("matcher benchmarks: no result in:\n%s", out)
	}
	return lines, nil
}

func parseBench(out string) []benchLine {
	var res []benchLine
	for _, line := range strings.Split(out, "\n") {
		m := benchRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		b := benchLine{name: m[1]}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.nsPerOp = v
			case "events/s":
				b.eventsSec = v
			case "B/op":
				b.bytesOp = v
			case "allocs/op":
				b.allocsOp = v
			}
		}
		res = append(res, b)
	}
	return res
}

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile of the whole run to the file named by
// $KNOCKD_CPUPROFILE, for measuring the daemon under load (see
// cmd/knock-bench); it returns the function that ends it. Without the
// variable it does nothing.
func startProfile() (stop func()) {
	path := os.Getenv("KNOCKD_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "knockd: KNOCKD_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

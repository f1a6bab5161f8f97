//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "bench: not implemented on %s: it needs Linux network namespaces and packet sockets\n", runtime.GOOS)
	os.Exit(1)
}

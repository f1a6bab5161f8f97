//go:build !linux

package netlab

import (
	"fmt"
	"os"
	"runtime"
)

func available() error {
	return fmt.Errorf("not implemented on %s", runtime.GOOS)
}

func doIn(ns string, f func() error) error {
	return fmt.Errorf("netlab: not implemented on %s", runtime.GOOS)
}

func openTun(ns, dev string) (*os.File, error) {
	return nil, fmt.Errorf("netlab: not implemented on %s", runtime.GOOS)
}

func netnsID() (string, error) {
	return "", fmt.Errorf("not implemented on %s", runtime.GOOS)
}

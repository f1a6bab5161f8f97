//go:build !unix

package klog

import (
	"fmt"
	"io"
	"runtime"
)

func dialSyslog() (io.WriteCloser, error) {
	return nil, fmt.Errorf("klog: syslog not implemented on %s", runtime.GOOS)
}

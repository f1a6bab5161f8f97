//go:build !unix

package klog

import (
	"fmt"
	"runtime"
)

type syslogConn struct{ path string }

func (s *syslogConn) connect() error {
	return fmt.Errorf("klog: syslog not implemented on %s", runtime.GOOS)
}

func (s *syslogConn) send([]byte) error { return s.connect() }

func (s *syslogConn) close() {}

//go:build unix

package klog

import (
	"io"
	"log/syslog"
)

func dialSyslog() (io.WriteCloser, error) {
	return syslog.New(syslog.LOG_NOTICE|syslog.LOG_USER, "knockd")
}

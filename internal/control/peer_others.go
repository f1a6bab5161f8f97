//go:build !linux

package control

import (
	"fmt"
	"net"
	"runtime"
)

func supported() error {
	return fmt.Errorf("control: the control socket is not implemented on %s", runtime.GOOS)
}

func peer(*net.UnixConn) (uid, pid int, err error) {
	return 0, 0, supported()
}

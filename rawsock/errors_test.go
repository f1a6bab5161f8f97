package rawsock

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestOpenErrorPermission(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.EACCES} {
		err := openError("opening an AF_PACKET socket", os.NewSyscallError("socket", errno))
		if !errors.Is(err, os.ErrPermission) || !errors.Is(err, errno) {
			t.Errorf("%v: errors.Is(err, os.ErrPermission) = false", err)
		}
		for _, want := range []string{"rawsock: ", "CAP_NET_RAW", "setcap cap_net_raw+ep ", "root", "--backend listener"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q lacks %q", err, want)
			}
		}
	}
	err := openError("opening an AF_PACKET socket", os.NewSyscallError("socket", syscall.EAFNOSUPPORT))
	if errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "CAP_NET_RAW") {
		t.Errorf("not a permission error, but: %v", err)
	}
}

func TestPermissionHint(t *testing.T) {
	if got := permissionHint("/usr/sbin/knockd"); !strings.Contains(got, "`setcap cap_net_raw+ep /usr/sbin/knockd`") {
		t.Errorf("hint = %q", got)
	}
	if got := permissionHint("/tmp/my dir/knockd"); !strings.Contains(got, "/path/to/knockd") {
		t.Errorf("hint for a path with a space = %q", got)
	}
	if got := permissionHint(""); !strings.Contains(got, "/path/to/knockd") {
		t.Errorf("hint without a path = %q", got)
	}
}

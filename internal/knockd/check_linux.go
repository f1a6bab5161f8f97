package knockd

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The capabilities that --check looks for.
const (
	capNetRaw         = unix.CAP_NET_RAW
	capNetBindService = unix.CAP_NET_BIND_SERVICE
)

// hasCapability reports whether capability bit cap is in this process's
// effective set (which for root holds every capability it may use).
func hasCapability(cap int) capState {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return capUnknown
	}
	if data[cap/32].Effective&(1<<(cap%32)) != 0 {
		return capYes
	}
	return capNo
}

// unprivilegedPortStart returns the lowest port that needs no
// CAP_NET_BIND_SERVICE in this network namespace
// (net.ipv4.ip_unprivileged_port_start, 1024 unless changed).
func unprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// linkExists reports whether the network interface name exists, from
// /sys/class/net, which shows the interfaces of the network namespace
// sysfs was mounted in (that of the process, for a knockd started in its
// namespace), without opening a socket; known is false when sysfs is not
// there.
func linkExists(name string) (ok, known bool) {
	if _, err := os.Stat("/sys/class/net"); err != nil {
		return false, false
	}
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return false, true
	}
	_, err := os.Lstat("/sys/class/net/" + name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, true
	}
	return err == nil, err == nil
}

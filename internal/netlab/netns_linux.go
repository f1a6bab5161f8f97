package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

func available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root to create network namespaces and TUN devices (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs the ip command (iproute2): %w", err)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("needs /dev/net/tun: %w", err)
	}
	unix.Close(fd)
	// Root in a container may still lack CAP_SYS_ADMIN: try for real, on
	// a thread that is thrown away afterwards.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("cannot create a network namespace: %w", err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// doIn calls f on a thread inside the namespace named ns, then returns the
// thread to its own namespace. A thread that cannot return stays locked,
// so that the runtime ends it with the goroutine.
func doIn(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: opening this thread's namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: opening namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: entering namespace %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netlab: leaving namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// openTun creates the TUN device dev (IPv4 and IPv6 packets, no packet
// information header) in namespace ns and returns its file, non-blocking
// so that Close interrupts a Read.
func openTun(ns, dev string) (*os.File, error) {
	var f *os.File
	err := doIn(ns, func() error {
		// The device is created in the namespace of the thread that
		// opens /dev/net/tun.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("netlab: opening /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(dev)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("netlab: TUN device %q: %w", dev, err)
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("netlab: creating TUN device %s in %s: %w", dev, ns, err)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+dev)
		return nil
	})
	return f, err
}

// netnsID returns an identifier of this thread's network namespace.
func netnsID() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", fmt.Errorf("reading this thread's network namespace: %w", err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Everything here measures a daemon from outside, through /proc and its
// file descriptors, so that knockd and ours are measured the same way and
// neither needs a debug mode.

// cpuTime returns the time the process's threads have spent on a CPU,
// from the scheduler's own count (/proc/PID/task/*/schedstat, in
// nanoseconds). utime and stime in /proc/PID/stat are not used: on a
// kernel with tick-based accounting they charge whole 4 ms ticks to
// whatever runs when the tick comes, softirq work of other processes
// included, which is no measure of a daemon that runs for microseconds
// at a time. Threads that have exited are not counted; neither daemon's
// threads exit.
func cpuTime(pid int) (time.Duration, error) {
	s, err := readThreadStats(pid)
	return s.run, err
}

// threadStats are counters summed over a process's live threads.
type threadStats struct {
	threads int
	// run is the time spent on a CPU (/proc/PID/task/TID/schedstat, in
	// nanoseconds, the unit of cpuTime).
	run time.Duration
	// switches counts voluntary and involuntary context switches: each
	// one is a time a thread went to sleep or was put off the CPU, so
	// for an idle process, each is a wake-up.
	switches uint64
}

func readThreadStats(pid int) (threadStats, error) {
	var s threadStats
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return s, err
	}
	for _, e := range ents {
		st, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue // the thread has just exited
		}
		for _, line := range strings.Split(string(st), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				s.switches += n
			}
		}
		if ss, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat")); err == nil {
			if f := strings.Fields(string(ss)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				s.run += time.Duration(n)
			}
		}
		s.threads++
	}
	return s, nil
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			n, err := strconv.ParseUint(v, 10, 64)
			return n << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// packetSocketFDs returns the descriptors of pid that are AF_PACKET
// sockets: /proc/PID/net/packet lists the packet sockets of the
// process's network namespace by inode, /proc/PID/fd names each
// descriptor's inode.
func packetSocketFDs(pid int) ([]int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/packet", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inodes := map[string]bool{}
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		fs := strings.Fields(sc.Text())
		if first || len(fs) == 0 {
			continue
		}
		inodes["socket:["+fs[len(fs)-1]+"]"] = true
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !inodes[l] {
			continue
		}
		n, err := strconv.Atoi(e.Name())
		if err == nil {
			fds = append(fds, n)
		}
	}
	return fds, nil
}

// sockStats are the kernel's counters of a process's packet sockets.
type sockStats struct {
	socks int
	// packets counts the packets the socket's filter accepted, dropped
	// ones included; drops those the kernel dropped because the receive
	// queue (or, for libpcap, the ring) was full.
	packets, drops uint64
}

// readSockStats reads PACKET_STATISTICS of every packet socket of pid,
// through a duplicate of its descriptor (pidfd_getfd, needs
// PTRACE_MODE_ATTACH: root). Reading resets the kernel's counters, for
// the daemon too: neither daemon reads them during a run (knockd never
// calls pcap_stats; ours only in rawsock.Source.Stats, which the daemon
// does not call), so nothing is taken from them.
func readSockStats(pid int) (sockStats, error) {
	var s sockStats
	fds, err := packetSocketFDs(pid)
	if err != nil {
		return s, err
	}
	if len(fds) == 0 {
		return s, fmt.Errorf("process %d has no packet socket", pid)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return s, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	for _, fd := range fds {
		dup, err := unix.PidfdGetfd(pidfd, fd, 0)
		if err != nil {
			return s, fmt.Errorf("pidfd_getfd %d/%d: %w", pid, fd, err)
		}
		// struct tpacket_stats is the head of tpacket_stats_v3 too; the
		// kernel copies no more than asked.
		st, err := unix.GetsockoptTpacketStats(dup, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		unix.Close(dup)
		if err != nil {
			return s, fmt.Errorf("PACKET_STATISTICS of %d/%d: %w", pid, fd, err)
		}
		s.socks++
		s.packets += uint64(st.Packets)
		s.drops += uint64(st.Drops)
	}
	return s, nil
}

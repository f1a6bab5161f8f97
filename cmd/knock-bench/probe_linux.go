//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// latProbe stamps the arrival of one timed knock's element in an
// nftables set on the timing goroutine itself: right after the knock is
// sent, it reads the NFT_MSG_NEWSETELEM notifications of the server
// namespace without waiting (MSG_DONTWAIT, over and over) until the
// knocker's own comes. The stamp is then the commit plus one read.
//
// The nftables monitor (nftWatcher) stamps them on a goroutine that
// sleeps until the notification wakes it, and hands it over to another:
// on this kind of machine (two virtual CPUs, an idle one halted) a
// wake-up costs 40 to 70 µs, which would count as the daemon's. The
// probe's spinning costs one CPU for the length of each opening, for
// every daemon timed alike.
type latProbe struct {
	c   *netlink.Conn
	rc  syscall.RawConn
	buf []byte
}

func newLatProbe(nsFd int) (*latProbe, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return nil, fmt.Errorf("the latency probe's netlink socket: %w", err)
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return nil, fmt.Errorf("the latency probe joining NFNLGRP_NFTABLES: %w", err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &latProbe{c: c, rc: rc, buf: make([]byte, 1<<16)}, nil
}

func (p *latProbe) close() { p.c.Close() }

// drain reads and forgets what is waiting, so that a wait starts on
// notifications that come after it.
func (p *latProbe) drain() {
	for {
		if n, _ := p.read(); n <= 0 {
			return
		}
	}
}

// read reads what one recvfrom(2) without waiting gets; 0 when nothing
// is waiting.
func (p *latProbe) read() (int, error) {
	var n int
	var rerr error
	err := p.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), p.buf, unix.MSG_DONTWAIT)
		return true
	})
	if err != nil {
		return 0, err
	}
	if rerr == unix.EAGAIN || rerr == unix.EINTR {
		return 0, nil
	}
	return n, rerr
}

// wait spins until a notification says a is in set, and returns when
// that notification was read; false after limit, or when the socket
// lost notifications (ENOBUFS).
func (p *latProbe) wait(ctx context.Context, set string, a netip.Addr, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for i := 0; ; i++ {
		n, err := p.read()
		if err != nil {
			return time.Time{}, false
		}
		if n > 0 {
			now := time.Now()
			if elementIn(p.buf[:n], set, a) {
				return now, true
			}
			continue
		}
		if i%1024 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
			return time.Time{}, false
		}
		// Whatever else wants this CPU (the daemon's threads) runs first.
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// elementIn reports whether the netlink messages in b include an
// NFT_MSG_NEWSETELEM adding a to set.
func elementIn(b []byte, set string, a netip.Addr) bool {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if m.Header.Type != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM || len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:]) // after the nfgenmsg
		if err != nil {
			continue
		}
		inSet, has := false, false
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_ELEM_LIST_SET:
				inSet = ad.String() == set
			case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
				ad.Nested(func(elems *netlink.AttributeDecoder) error {
					for elems.Next() {
						elems.Nested(func(elem *netlink.AttributeDecoder) error {
							for elem.Next() {
								if elem.Type() == unix.NFTA_SET_ELEM_KEY {
									elem.Nested(func(key *netlink.AttributeDecoder) error {
										for key.Next() {
											if k, ok := netip.AddrFromSlice(key.Bytes()); ok && key.Type() == unix.NFTA_DATA_VALUE && k == a {
												has = true
											}
										}
										return nil
									})
								}
							}
							return nil
						})
					}
					return nil
				})
			}
		}
		if inSet && has {
			return true
		}
	}
	return false
}

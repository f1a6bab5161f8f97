//go:build !linux

package kset

import (
	"fmt"
	"net/netip"
	"runtime"
)

var errUnimplemented = fmt.Errorf("kset: nftables sets and ipsets are not implemented on %s", runtime.GOOS)

func check(u use, _ int) error {
	return &SetError{Door: u.door, Key: u.key, Value: u.value(), Err: errUnimplemented}
}

type unimplemented struct{}

func newAdder(use, int) adder { return unimplemented{} }

func (unimplemented) add([]addition) error { return errUnimplemented }

func (unimplemented) del(netip.Addr) error { return errUnimplemented }

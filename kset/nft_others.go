//go:build !linux

package kset

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/knock-go/knock/config"
)

var errUnimplemented = fmt.Errorf("kset: nftables sets and ipsets are not implemented on %s", runtime.GOOS)

type netKernel struct{ netnsFd int }

func (netKernel) NFTSet(config.NFTSet) (SetInfo, error) { return SetInfo{}, errUnimplemented }
func (netKernel) IPSet(string) (SetInfo, error)         { return SetInfo{}, errUnimplemented }

type unimplemented struct{}

func newAdder(use, int) adder { return unimplemented{} }

func (unimplemented) left() (map[netip.Addr]time.Duration, error) { return nil, errUnimplemented }
func (unimplemented) put([]element) error                         { return errUnimplemented }
func (unimplemented) del(netip.Addr) error                        { return errUnimplemented }

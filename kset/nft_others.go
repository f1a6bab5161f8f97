//go:build !linux

package kset

import (
	"fmt"
	"runtime"

	"github.com/knock-go/knock/config"
)

var errUnimplemented = fmt.Errorf("kset: nftables sets are not implemented on %s", runtime.GOOS)

func check(us []use, _ int) error {
	if len(us) == 0 {
		return nil
	}
	return &SetError{Door: us[0].door, Key: us[0].key, Set: us[0].set, Err: errUnimplemented}
}

type adder struct{}

func newAdder(config.NFTSet, int) *adder { return &adder{} }

func (*adder) add([]addition) error { return errUnimplemented }

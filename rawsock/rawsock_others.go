//go:build !linux

package rawsock

import (
	"context"
	"fmt"
	"runtime"

	"github.com/knock-go/knock/capture"
)

// errUnimplemented is returned by everything that would open a socket.
var errUnimplemented = fmt.Errorf("rawsock: not implemented on %s", runtime.GOOS)

type system struct{}

func (s *Source) open(capture.Spec) error                          { return errUnimplemented }
func (s *Source) run(context.Context, chan<- *capture.Batch) error { return errUnimplemented }
func (s *Source) update(capture.Spec) error                        { return errUnimplemented }
func (s *Source) close() error                                     { return nil }
func (s *Source) pollKernelStats()                                 {}
func available() error                                             { return errUnimplemented }

// Describe returns nothing: there is no capture on this system.
func (s *Source) Describe() []string { return nil }

//go:build !linux

package knockd

// The capabilities that --check looks for; elsewhere they are unknown.
const (
	capNetRaw = iota
	capNetBindService
)

func hasCapability(int) capState { return capUnknown }

func unprivilegedPortStart() int { return 1024 }

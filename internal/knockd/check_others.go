//go:build !linux

package knockd

// The capabilities that --check looks for; elsewhere they are unknown.
const (
	capNetRaw = iota
	capNetBindService
)

func hasCapability(int) capState { return capUnknown }

func unprivilegedPortStart() int { return 1024 }

// linkExists reports whether the network interface name exists.
func linkExists(name string) (ok, known bool) { return interfaceExists(name) }

package rawsock

import (
	"fmt"
	"slices"
	"strings"
)

// ifNameMax is the longest interface name Linux accepts (IFNAMSIZ-1).
const ifNameMax = 15

// interfaceNames returns the interfaces a Spec names, or nil for all of
// them.
func interfaceNames(ifaces []string) ([]string, error) {
	if len(ifaces) == 0 || (len(ifaces) == 1 && ifaces[0] == "any") {
		return nil, nil
	}
	var names []string
	for _, n := range ifaces {
		switch {
		case n == "any":
			return nil, fmt.Errorf(`rawsock: interface "any" means all interfaces and cannot be listed with others`)
		case n == "" || n == "." || n == "..":
			return nil, fmt.Errorf("rawsock: %q is not an interface name", n)
		case len(n) > ifNameMax:
			return nil, fmt.Errorf("rawsock: interface name %q is longer than %d bytes", n, ifNameMax)
		case strings.ContainsAny(n, "/: \t\n"):
			return nil, fmt.Errorf("rawsock: interface name %q contains a character Linux does not allow", n)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

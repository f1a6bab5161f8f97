package rawsock

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// openError wraps an error from opening a packet socket. A permission
// error says what is missing and how to grant it; the errno stays
// underneath for errors.Is.
func openError(what string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("rawsock: %s: %w: %s", what, err, permissionHint(executable()))
	}
	return fmt.Errorf("rawsock: %s: %w", what, err)
}

// permissionHint explains how to give the program at path the capability
// the raw backend needs.
func permissionHint(path string) string {
	if path == "" || strings.ContainsAny(path, " \t\n'\"") {
		path = "/path/to/knockd"
	}
	return "the raw backend needs CAP_NET_RAW: grant it with `setcap cap_net_raw+ep " + path +
		"`, run knockd as root, or use --backend listener"
}

func executable() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}

package cmdline

import (
	"fmt"
	"runtime/debug"
)

// Commit, when set with -ldflags "-X
// github.com/knock-go/knock/internal/cmdline.Commit=...", names the
// commit the binaries were built from; otherwise it comes from the
// version control stamp that go build records.
var Commit string

// VersionText is what -V prints: name and version on the first line, as
// knockd 0.8 and knock 0.8 print them ("knockd 0.8"), then a line naming
// this rewrite, and the commit it was built from ("unknown" when the
// build recorded none; "(modified)" when the work tree had changes).
func VersionText(name, version string) string {
	return fmt.Sprintf("%s %s\nA Go rewrite of knock by Judd Vinet: https://github.com/knock-go/knock\ncommit: %s\n",
		name, version, commit())
}

func commit() string {
	if Commit != "" {
		return Commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return fromSettings(info.Settings)
}

func fromSettings(settings []debug.BuildSetting) string {
	rev, modified := "", false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch {
	case rev == "":
		return "unknown"
	case modified:
		return rev + " (modified)"
	}
	return rev
}

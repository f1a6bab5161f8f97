package cmdline

import (
	"fmt"
	"runtime/debug"
)

// Version, when set with -ldflags "-X
// github.com/knock-go/knock/internal/cmdline.Version=...", is this
// build's own version, from git describe (make sets it); otherwise it
// is the module version go build recorded, or "unknown".
var Version string

// Commit, when set with -ldflags "-X
// github.com/knock-go/knock/internal/cmdline.Commit=...", names the
// commit the binaries were built from; otherwise it comes from the
// version control stamp that go build records.
var Commit string

// VersionText is what -V prints: name and version on the first line, as
// knockd 0.8 and knock 0.8 print them ("knockd 0.8"), so that scripts
// reading it see the release this replaces; then a line naming this
// rewrite, its own version, and the commit it was built from ("unknown"
// when the build recorded none; "(modified)" when the work tree had
// changes).
func VersionText(name, version string) string {
	return fmt.Sprintf("%s %s\nA Go rewrite of knock by Judd Vinet: https://github.com/knock-go/knock\nversion: %s\ncommit: %s\n",
		name, version, ownVersion(), commit())
}

func ownVersion() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return "unknown"
	}
	return info.Main.Version
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

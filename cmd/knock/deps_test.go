package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoConfigParser checks that the client links neither the
// configuration parser nor its dependencies: the knock types it shares
// with the daemon live in the leaf package wire.
func TestNoConfigParser(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list the client's dependencies: %v", err)
	}
	// No VCS stamp: a checkout of another user's makes git refuse.
	cmd := exec.Command(gobin, "list", "-buildvcs=false", "-deps", ".")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps printed nothing")
	}
	for _, d := range deps {
		if d == "github.com/knock-go/knock/config" || strings.HasPrefix(d, "gopkg.in/ini") {
			t.Errorf("knock links %s", d)
		}
	}
	if !strings.Contains(string(out), "github.com/knock-go/knock/wire") {
		t.Errorf("knock does not link the wire package:\n%s", out)
	}
}

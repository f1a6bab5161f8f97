package cmddoc

import (
	"os"
	"path/filepath"
	"testing"
)

// CheckGenerated is the test both commands run on what they generate:
// got must be the committed file packaging/REL (REL with slashes), found
// from the command's package directory. With update, the file is
// rewritten instead. who names the command in the failure.
func CheckGenerated(t testing.TB, update bool, who, rel string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "packaging", filepath.FromSlash(rel))
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./cmd/... -run Generated -update)", err)
	}
	if string(want) != string(got) {
		t.Errorf("packaging/%s is not what %s's flags generate: run go test ./cmd/... -run Generated -update, and commit the result", rel, who)
	}
}

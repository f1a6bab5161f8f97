package netlab

import "testing"

func TestIsolatedRun(t *testing.T) {
	for _, c := range []struct{ name, run, want string }{
		{"TestX", "", "^TestX$"},
		{"TestX", "TestX", "^TestX$"},
		{"TestX", "TestX/ring", "^TestX$/ring"},
		{"TestX", "Test/ring/IPv4", "^TestX$/ring/IPv4"},
		{"TestX", "Test[/]X/a", "^TestX$/a"},
		{"TestX", "(TestX/a)", "^TestX$"},
		{"Test.X", "", `^Test\.X$`},
	} {
		if got := isolatedRun(c.name, c.run); got != c.want {
			t.Errorf("isolatedRun(%q, %q) = %q, want %q", c.name, c.run, got, c.want)
		}
	}
}

func TestIsolatedResult(t *testing.T) {
	out := []byte("=== RUN   TestXY\n--- PASS: TestXY (0.00s)\n=== RUN   TestX\n    x_test.go:1: hi\n--- SKIP: TestX (0.01s)\n")
	for name, want := range map[string]string{"TestX": "SKIP", "TestXY": "PASS", "TestZ": ""} {
		if got := isolatedResult(out, name); got != want {
			t.Errorf("isolatedResult(%q) = %q, want %q", name, got, want)
		}
	}
}

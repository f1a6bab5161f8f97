package netlab

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The environment of a test binary that Isolate started: the test it must
// run, and the namespace it runs in.
const (
	isolateTestEnv  = "KNOCK_NETLAB_ISOLATED"
	isolateNetnsEnv = "KNOCK_NETLAB_NETNS"
	isolateFromEnv  = "KNOCK_NETLAB_FROM" // the suite's namespace, as netnsID gives it
)

// Isolate runs the calling test, whole, in a network namespace of its own,
// so that every interface, address and route it creates in "its"
// namespace is created there, never in the namespace the suite runs in.
// It is for tests of code that opens sockets on threads and goroutines of
// its own (the raw backend, its rtnetlink watcher): Do would move one
// thread only. Call it first, from a top-level test:
//
//	if !netlab.Isolate(t) {
//		return // it ran in a namespace of its own
//	}
//
// In the suite's process, Isolate creates a namespace (deleted when the
// test ends), runs the test binary in it through "ip netns exec" with
// -test.run selecting this test alone (and the subtests the run's own
// -test.run selects), and returns false once it has ended: its output is
// logged, and its failure or skip is the test's. In that process, which
// Isolate marks in its environment, Isolate returns true and the test goes
// on. Namespaces the run leaves behind (it was killed before its cleanup)
// are deleted as well.
//
// It skips the test, with the reason, where Require would. The run inside
// records no coverage.
func Isolate(t *testing.T) bool {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("netlab: Isolate called from the subtest %s: call it from a top-level test", t.Name())
	}
	if os.Getenv(isolateTestEnv) == t.Name() {
		id, err := netnsID()
		if err != nil {
			t.Fatalf("netlab: %v", err)
		}
		if id == os.Getenv(isolateFromEnv) {
			t.Fatalf("netlab: the isolated run of %s is in the namespace of the run that started it", t.Name())
		}
		return true
	}
	Require(t)
	from, err := netnsID()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	ns := NewNetns(t, "nliso")

	args := []string{
		"-test.run=" + isolatedRun(t.Name(), flagValue("test.run")),
		"-test.count=1",
		"-test.v=true",
	}
	if s := flagValue("test.skip"); s != "" {
		args = append(args, "-test.skip="+s)
	}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		// The run inside times out first, and prints its goroutines.
		left := time.Until(d)
		args = append(args, fmt.Sprintf("-test.timeout=%v", left*9/10))
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-left/20))
		defer cancel()
	}
	cmd := ns.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), isolateTestEnv+"="+t.Name(), isolateNetnsEnv+"="+ns.Name(), isolateFromEnv+"="+from)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		removeLeftovers(t, cmd.Process.Pid)
	}
	t.Logf("netlab: ran in namespace %s: %s\n%s", ns.Name(), strings.Join(cmd.Args, " "), out)
	if err != nil {
		t.Fatalf("netlab: the test failed in namespace %s: %v", ns.Name(), err)
	}
	switch isolatedResult(out, t.Name()) {
	case "PASS":
	case "SKIP":
		t.Skipf("netlab: skipped in namespace %s (the reason is logged above)", ns.Name())
	default:
		t.Fatalf("netlab: the test binary ran no test %s in namespace %s", t.Name(), ns.Name())
	}
	return false
}

// IsolatedNetns returns the name of the namespace Isolate runs this
// process in, or "" outside one.
func IsolatedNetns() string { return os.Getenv(isolateNetnsEnv) }

// flagValue returns the value of the test binary's flag name, or "".
func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// isolatedRun returns the -test.run pattern that selects the top-level
// test name alone, keeping the subtest part of the pattern run (the
// elements after its first top-level slash, as the testing package splits
// it).
func isolatedRun(name, run string) string {
	pattern := "^" + regexp.QuoteMeta(name) + "$"
	depth := 0
	for i, c := range run {
		switch c {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case '/':
			if depth == 0 {
				return pattern + run[i:]
			}
		}
	}
	return pattern
}

// isolatedResult returns PASS, SKIP or FAIL as the verbose output out
// reports the top-level test name, or "" when it does not.
func isolatedResult(out []byte, name string) string {
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		for _, r := range []string{"PASS", "SKIP", "FAIL"} {
			if strings.HasPrefix(sc.Text(), "--- "+r+": "+name+" (") {
				return r
			}
		}
	}
	return ""
}

// removeLeftovers deletes the namespaces that the process pid created
// through netlab (their names carry its pid) and left behind. Inside "ip
// netns exec" the namespace's mount is the process's own, and goes with
// it; its name in /var/run/netns stays.
func removeLeftovers(t *testing.T, pid int) {
	t.Helper()
	names, _ := filepath.Glob("/var/run/netns/*-" + strconv.Itoa(pid) + "-*")
	own := regexp.MustCompile(`-` + strconv.Itoa(pid) + `-[0-9]+-[0-9a-f]{4}$`)
	for _, p := range names {
		name := filepath.Base(p)
		if !own.MatchString(name) {
			continue
		}
		if out, err := run("ip", "netns", "del", name); err != nil {
			t.Errorf("netlab: deleting namespace %s, left by the test's run: %v: %s", name, err, out)
		} else {
			t.Logf("netlab: deleted namespace %s, left by the test's run", name)
		}
	}
}

package kset

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knock-go/knock/config"
)

func TestPlan(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	batch := []addition{
		{door: "short", addr: a, timeout: 30 * time.Second},
		{door: "long", addr: a, timeout: time.Hour}, // two doors, one set: the longer wins
		{door: "short", addr: b, timeout: 30 * time.Second},
		{door: "short", addr: c, timeout: 0},
	}
	left := map[netip.Addr]time.Duration{
		a: 10 * time.Minute, // less than the hour asked for: raised
		b: 20 * time.Minute, // more than 30 s: kept
	}
	elems, kept := plan(batch, left)
	want := []element{{addr: a, timeout: time.Hour}, {addr: c, timeout: time.Second}}
	if diff := cmp.Diff(want, elems, cmp.AllowUnexported(element{}), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("elements (-want +got):\n%s", diff)
	}
	if len(kept) != 1 || kept[b] != 20*time.Minute {
		t.Errorf("kept %v, want %v with 20m", kept, b)
	}
}

// fakeSet is a set the worker reads and writes, without a kernel.
type fakeSet struct {
	mu   sync.Mutex
	now  map[netip.Addr]time.Duration
	puts [][]element
	// excl makes it refuse, as an ipset does, a new element it holds.
	excl  bool
	reads int
}

func (f *fakeSet) left() (map[netip.Addr]time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	m := make(map[netip.Addr]time.Duration, len(f.now))
	for k, v := range f.now {
		m[k] = v
	}
	return m, nil
}

func (f *fakeSet) put(es []element) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, slices.Clone(es))
	errs := elemErrors{}
	for _, e := range es {
		if _, ok := f.now[e.addr]; ok && f.excl && !e.present {
			errs[e.addr] = errPresent
			continue
		}
		f.now[e.addr] = e.timeout
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (f *fakeSet) del(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.now, a)
	return nil
}

// TestRevokeThenKnock: a revoked knocker is removed from the set and
// forgotten by the worker, so that knocking again puts it back at once
// instead of being taken for an element with time left.
func TestRevokeThenKnock(t *testing.T) {
	var (
		mu    sync.Mutex
		lines []string
	)
	f := &fakeSet{now: map[netip.Addr]time.Duration{}}
	s, err := New(nil, Options{Logf: func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, a...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{what: "nft set inet knockd ssh4", q: make(chan addition, queueLen), a: f}
	s.workers[w.what] = w
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(w)
	}()
	d := &config.Door{Name: "ssh", CmdTimeout: time.Hour, NFTSet: config.NFTSet{Family: "inet", Table: "knockd", Name: "ssh4"}}
	a := netip.MustParseAddr("198.18.0.2")
	s.Open(d, a, "198.18.0.2", time.Now())
	if got := s.Revoke(a, ""); len(got) != 1 || got[0].Door != "ssh" {
		t.Fatalf("Revoke = %+v, want the ssh door's element", got)
	}
	s.Open(d, a, "198.18.0.2", time.Now())
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.now[a]; got != time.Hour {
		t.Errorf("after revoke and a new knock, %v has %v left in the set, want 1h", a, got)
	}
	want := []string{
		"ssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 3600 s",
		"ssh: removing 198.18.0.2 from nft set inet knockd ssh4",
		"ssh: adding 198.18.0.2 to nft set inet knockd ssh4 for 3600 s",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

// TestNeverShorter: a door with a short Cmd_Timeout sharing a set with a
// long one never shortens the long one's opening, and says so.
func TestNeverShorter(t *testing.T) {
	var (
		mu    sync.Mutex
		lines []string
	)
	s := &Sets{opts: Options{Logf: func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, a...))
	}}}
	f := &fakeSet{now: map[netip.Addr]time.Duration{}}
	w := &worker{what: "nft set inet knockd ssh4", a: f}
	long := &config.Door{Name: "long", CmdTimeout: time.Hour}
	short := &config.Door{Name: "short", CmdTimeout: 10 * time.Second}
	a := netip.MustParseAddr("198.18.0.2")
	s.add(w, []addition{{door: long.Name, addr: a, timeout: long.CmdTimeout}})
	s.add(w, []addition{{door: short.Name, addr: a, timeout: short.CmdTimeout}})
	if got := f.now[a]; got != time.Hour {
		t.Errorf("%v has %v left, want 1h", a, got)
	}
	if len(f.puts) != 1 {
		t.Errorf("puts %v, want only the first", f.puts)
	}
	want := []string{
		"long: adding 198.18.0.2 to nft set inet knockd ssh4 for 3600 s",
		"short: 198.18.0.2 stays in nft set inet knockd ssh4 for the 3600 s it has left, longer than 10 s",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

// TestOverflow: additions beyond a full queue are dropped, never
// blocking Open, with one line a second that counts them.
func TestOverflow(t *testing.T) {
	var lines []string
	s := &Sets{opts: Options{Logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}, workers: map[string]*worker{}}
	w := &worker{what: "nft set inet knockd ssh4", q: make(chan addition, 2)}
	s.workers[w.what] = w
	d := &config.Door{Name: "ssh", CmdTimeout: time.Minute, NFTSet: config.NFTSet{Family: "inet", Table: "knockd", Name: "ssh4"}}
	t0 := time.Now()
	a := netip.MustParseAddr("198.18.0.0")
	for i := range 10 {
		a = a.Next()
		s.Open(d, a, "", t0.Add(time.Duration(i)*time.Millisecond))
	}
	s.Open(d, a.Next(), "", t0.Add(2*time.Second))
	want := []string{
		"ssh: error: 2 additions already waiting for nft set inet knockd ssh4, which is not keeping up: 198.18.0.3 not added (1 not added since the last such line)",
		"ssh: error: 2 additions already waiting for nft set inet knockd ssh4, which is not keeping up: 198.18.0.11 not added (8 not added since the last such line)",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	if s.Dropped() != 9 || len(w.q) != 2 {
		t.Errorf("%d dropped, %d queued: want 9 and 2", s.Dropped(), len(w.q))
	}
}

// TestReloadRereads: what another program put in the set after the
// worker read it is seen after a reload, and never shortened then.
func TestReloadRereads(t *testing.T) {
	var lines []string
	s := &Sets{opts: Options{Kernel: lab, Logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}, workers: map[string]*worker{}}
	f := &fakeSet{now: map[netip.Addr]time.Duration{}}
	w := &worker{what: "nft set inet knockd ssh4", a: f}
	s.workers[w.what] = w
	d := &config.Door{Name: "ssh", CmdTimeout: 30 * time.Second, NFTSet: nft("inet", "knockd", "ssh4")}
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	s.add(w, []addition{{door: d.Name, addr: a, timeout: d.CmdTimeout}})
	f.mu.Lock()
	f.now[b] = 2 * time.Hour // by hand, after the worker read the set
	f.mu.Unlock()
	if err := s.Update([]*config.Door{d}); err != nil {
		t.Fatal(err)
	}
	s.add(w, []addition{{door: d.Name, addr: b, timeout: d.CmdTimeout}})
	if got := f.now[b]; got != 2*time.Hour {
		t.Errorf("%v has %v, want the 2h put there by hand", b, got)
	}
	if want := "ssh: 198.18.0.3 stays in nft set inet knockd ssh4 for the 7200 s it has left, longer than 30 s"; !slices.Contains(lines, want) {
		t.Errorf("log %q: want %q", lines, want)
	}
}

// TestPresentRereads: an element another program put in an ipset after
// the worker read it is refused as present; the worker reads the set
// again and keeps the element's longer time.
func TestPresentRereads(t *testing.T) {
	var lines []string
	s := &Sets{opts: Options{Logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}}
	f := &fakeSet{now: map[netip.Addr]time.Duration{}, excl: true}
	w := &worker{what: "ipset knock4", a: f}
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	s.add(w, []addition{{door: "ssh", addr: a, timeout: 30 * time.Second}})
	f.mu.Lock()
	f.now[b] = 2 * time.Hour
	f.mu.Unlock()
	s.add(w, []addition{{door: "ssh", addr: b, timeout: 30 * time.Second}, {door: "ssh", addr: netip.MustParseAddr("198.18.0.4"), timeout: 30 * time.Second}})
	if got := f.now[b]; got != 2*time.Hour {
		t.Errorf("%v has %v, want the 2h put there by another program", b, got)
	}
	if f.reads != 2 {
		t.Errorf("%d reads of the set, want 2 (the first batch, and the refusal)", f.reads)
	}
	want := []string{
		"ssh: adding 198.18.0.2 to ipset knock4 for 30 s",
		"ssh: 198.18.0.3 stays in ipset knock4 for the 7200 s it has left, longer than 30 s",
		"ssh: adding 198.18.0.4 to ipset knock4 for 30 s",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
}

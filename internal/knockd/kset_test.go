package knockd

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/capture/capturetest"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/kset"
)

// fakeSets is a kernel whose nftables sets the test adds and removes.
type fakeSets struct {
	mu   sync.Mutex
	sets map[string]kset.SetInfo // "inet knockd ssh4"
}

func (k *fakeSets) NFTSet(s config.NFTSet) (kset.SetInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if info, ok := k.sets[s.String()]; ok {
		return info, nil
	}
	return kset.SetInfo{Missing: true}, nil
}

func (k *fakeSets) IPSet(string) (kset.SetInfo, error) { return kset.SetInfo{Missing: true}, nil }

func (k *fakeSets) drop(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.sets, name)
}

const setDoor = `
[d]
	sequence = %[1]d:udp,%[1]d:udp
	seq_timeout = 60
	NFT_Set = inet knockd ssh4
# %[2]s
`

// TestSetMissingAtStart: a door whose set is missing stops the start-up
// with the message that names it.
func TestSetMissingAtStart(t *testing.T) {
	t.Parallel()
	d := &testDaemon{t: t, dir: t.TempDir()}
	d.conf = d.dir + "/knockd.conf"
	d.write(setDoor)
	err := Run(context.Background(), Options{ConfigPath: d.conf, Backend: "listener", Stdout: &d.stdout, Stderr: &d.stderr,
		kernel: &fakeSets{}})
	var se *kset.SetError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "[d] NFT_Set = inet knockd ssh4: table inet knockd has no set ssh4: create it with: nft add set") {
		t.Errorf("Run: %v, want the missing set named", err)
	}
}

// TestReloadSetMissing: a reload to a configuration whose set is missing
// keeps the running configuration, and says why.
func TestReloadSetMissing(t *testing.T) {
	t.Parallel()
	k := &fakeSets{sets: map[string]kset.SetInfo{
		"inet knockd ssh4": {Type: "ipv4_addr", Timeout: true},
		"inet knockd web4": {Type: "ipv4_addr", Timeout: true},
	}}
	var src *capturetest.Source
	f := &fakeDaemon{}
	f.testDaemon = runDaemon(t, setDoor, Options{kernel: k, NewSource: func(spec capture.Spec, _ func(string, ...any)) (capture.Source, error) {
		src = capturetest.NewSource(spec)
		return src, nil
	}})
	f.src = src
	_, updates := f.src.Spec()

	k.drop("inet knockd web4")
	moved := strings.ReplaceAll(setDoor, "ssh4", "web4")
	moved = strings.ReplaceAll(moved, "%[1]d:udp,%[1]d:udp", "%[1]d:tcp,%[1]d:udp")
	f.sighup(moved)
	f.waitOut("[d] NFT_Set = inet knockd web4: table inet knockd has no set web4: create it with: nft add set inet knockd web4 '{ type ipv4_addr; flags timeout; }'; keeping the running configuration", &f.stderr)
	if got, n := f.src.Spec(); n != updates || len(got.Ports) != 1 || int(got.Ports[0].Port) != f.port() {
		t.Errorf("a refused reload changed the source: %d updates (was %d), ports %v", n, updates, f.ports())
	}
	// The running door still counts knocks.
	a := netip.MustParseAddr("198.18.0.3")
	f.knocks(f.port(), a)
	f.waitOut(stage1(a.String()), &f.stdout)
}

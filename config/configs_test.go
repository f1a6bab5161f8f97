package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/knock-go/knock/wire"
)

// cmpAddr compares netip.Addr and netip.Prefix values, whose fields are
// unexported, and leaves out Door.OneTimeInfo, the os.FileInfo of a
// one-time file.
var cmpAddr = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.IgnoreFields(Door{}, "OneTimeInfo"),
}

// seq builds a sequence from "port" (TCP) and "port/u" (UDP) shorthands
// given as ints: a negative port is UDP.
func seq(ports ...int) []wire.Knock {
	var s []wire.Knock
	for _, p := range ports {
		if p < 0 {
			s = append(s, wire.Knock{Port: uint16(-p), Proto: wire.UDP})
		} else {
			s = append(s, wire.Knock{Port: uint16(p), Proto: wire.TCP})
		}
	}
	return s
}

// door returns a door with knockd's defaults, for tests to adjust.
func door(name string, line int, s []wire.Knock) *Door {
	return &Door{Name: name, Line: line, Sequence: s, SeqTimeout: DefaultSeqTimeout, CmdTimeout: DefaultCmdTimeout}
}

// with applies f to d and returns d, to keep tables short.
func with(d *Door, f func(*Door)) *Door { f(d); return d }

// TestConfigs loads every file in configs/ (the tutorial's examples among
// them) the way the daemon would, from the repository root.
func TestConfigs(t *testing.T) {
	t.Chdir("..")
	syn := wire.FlagFilter{Set: wire.SYN}
	tests := []struct {
		file string
		want *Config
	}{
		{
			file: "configs/tutorial-ssh.conf",
			want: &Config{
				UseSyslog: true,
				Doors: []*Door{
					with(door("openSSH", 8, seq(7000, 8000, 9000)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT"
					}),
					with(door("closeSSH", 15, seq(9000, 8000, 7000)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = "/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT"
					}),
				},
			},
		},
		{
			file: "configs/tutorial-openclose.conf",
			want: &Config{
				UseSyslog: true,
				Doors: []*Door{
					with(door("opencloseSSH", 8, seq(-2222, 3333, -4444)), func(d *Door) {
						d.SeqTimeout = 15 * time.Second
						d.Flags = wire.FlagFilter{Set: wire.SYN | wire.ACK}
						d.StartCommand = "/usr/sbin/iptables -A INPUT -s %IP% -p tcp --syn --dport 22 -j ACCEPT"
						d.CmdTimeout = 10 * time.Second
						d.StopCommand = "/usr/sbin/iptables -D INPUT -s %IP% -p tcp --syn --dport 22 -j ACCEPT"
					}),
				},
			},
		},
		{
			file: "configs/tutorial-onetime.conf",
			want: &Config{
				Doors: []*Door{
					with(door("openHello", 9, seq(6110, 6120, 6130)), func(d *Door) {
						d.OneTimeFile = "configs/sequences.seq"
						d.OneTimeOffset = 0
						d.OneTimeText = " 6110,6120,6130"
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = `echo "Je suis ouvert"`
					}),
					with(door("closeHello", 16, seq(9100, 9500, 9900)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = `echo "Je suis ferme"`
					}),
				},
			},
		},
		{
			file: "configs/tutorial-ftp.conf",
			want: &Config{
				Doors: []*Door{
					with(door("openFTP", 6, seq(23077, -12044, 13001, -42967)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = "/sbin/iptables -I INPUT -d 198.51.100.1 -s %IP% -p tcp --dport 21 -j ACCEPT"
					}),
					with(door("closeFTP", 12, seq(23078, -12045, 13002, -42968)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = "/sbin/iptables -D INPUT -d 198.51.100.1 -s %IP% -p tcp --dport 21 -j ACCEPT"
					}),
					with(door("openWEBMIN", 18, seq(44295, -50155, 11932, -24085)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = "/sbin/iptables -I INPUT -d 198.51.100.1 -s %IP% -p tcp --dport 10000 -j ACCEPT"
					}),
					with(door("closeWEBMIN", 24, seq(44296, -50156, 11933, -24086)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = "/sbin/iptables -D INPUT -d 198.51.100.1 -s %IP% -p tcp --dport 10000 -j ACCEPT"
					}),
					with(door("REBOOT", 30, seq(23654, -50443, 20978, -31855)), func(d *Door) {
						d.SeqTimeout = 5 * time.Second
						d.Flags = syn
						d.StartCommand = "/sbin/shutdown -r +1"
					}),
				},
			},
		},
		{
			file: "configs/example.conf",
			want: &Config{
				Doors: []*Door{
					with(door("open", 12, seq(7000, 8000, 9000)), func(d *Door) {
						d.SeqTimeout = 10 * time.Second
						d.Flags = syn
						d.StartCommand = `echo "$(date) open %IP%" >> /tmp/knockd-example-$(id -u).log`
						d.CmdTimeout = 30 * time.Second
						d.StopCommand = `echo "$(date) close %IP% (timeout)" >> /tmp/knockd-example-$(id -u).log`
					}),
					with(door("close", 21, seq(9000, 8000, 7000)), func(d *Door) {
						d.SeqTimeout = 10 * time.Second
						d.Flags = syn
						d.StartCommand = `echo "$(date) close %IP%" >> /tmp/knockd-example-$(id -u).log`
					}),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			got, err := Load(tt.file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.want.Path = tt.file
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("Load(%q) mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

// TestConfigsAllLoad makes sure no file in configs/ is left untested or
// broken.
func TestConfigsAllLoad(t *testing.T) {
	t.Chdir("..")
	files, err := filepath.Glob("configs/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d files in configs/: %q", len(files), files)
	}
	for _, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Errorf("Load: %v", err)
			continue
		}
		if len(c.Warnings) > 0 {
			t.Errorf("%s: unexpected warnings %q", f, c.Warnings)
		}
	}
}

// BenchmarkParseConfigs parses each file in configs/ from memory, with a
// stand-in for the one-time sequence file, so that it times the parser
// alone: go test -run '^$' -bench ParseConfigs ./config/
func BenchmarkParseConfigs(b *testing.B) {
	files, err := filepath.Glob("../configs/*.conf")
	if err != nil || len(files) == 0 {
		b.Fatalf("no files in ../configs: %v", err)
	}
	oneTime := func(string) ([]wire.Knock, OneTimeLine, error) {
		return seq(6110, 6120, 6130), OneTimeLine{Off: 1, Num: 1, Text: " 6110,6120,6130"}, nil
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(f), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parse(f, data, oneTime); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

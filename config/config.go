// Package config holds the knockd.conf model and its parser.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
)

// Default values of knockd 0.8.
const (
	DefaultSeqTimeout = 25 * time.Second
	DefaultCmdTimeout = 10 * time.Second
	DefaultPidFile    = "/var/run/knockd.pid"
	// MaxSequence is the longest sequence knockd accepts.
	MaxSequence = 32
)

// DefaultCommandLimit is how long a command may run when [options] sets
// no CommandLimit (knockd 0.8 has none). A firewall command takes
// milliseconds; one still running after a minute is stuck (iptables -w
// waiting on a lock that is never released), and every second it holds
// a slot delays other doors' commands. A minute leaves room for slow
// scripts (a DNS lookup, a remote call) without letting a hung one keep
// a slot for ever.
const DefaultCommandLimit = 60 * time.Second

// Door is one knock section of knockd.conf.
type Door struct {
	// Name is the section name, used in every log line about the door.
	Name string
	// Line is the line of the section header, for messages.
	Line int
	// Sequence is the knock sequence. For a one-time door it is the
	// current (first unused) line of OneTimeFile; empty when that line
	// is not a sequence, which disables the door (see Config.Warnings).
	// For a time-derived door (SecretFile != "") it is empty as parsed;
	// the matcher derives a copy of the door for each step it accepts,
	// with that step's sequence here and the step in Step.
	Sequence []wire.Knock
	// SecretFile is the Sequence_Secret path, which makes the door's
	// sequences time-derived; empty otherwise.
	SecretFile string
	// Secret is SecretFile's secret, decoded. Valid iff SecretFile != "".
	Secret []byte
	// Derive is how the sequences are derived: Sequence_Length,
	// Sequence_Ports, Sequence_Step and Sequence_Proto. Valid iff
	// SecretFile != "".
	Derive seqderive.Params
	// Step is the step counter that Sequence was derived for. Valid iff
	// SecretFile != "" and Sequence is not empty.
	Step uint64
	// OneTimeFile is the One_Time_Sequences path; empty for a fixed
	// sequence.
	OneTimeFile string
	// OneTimeOffset is the byte offset in OneTimeFile of the line that
	// Sequence came from. Valid iff OneTimeFile != "".
	OneTimeOffset int64
	// OneTimeText is that line as it was read, without its newline, and
	// OneTimeInfo the file it was read from: UseOneTime marks the line
	// only while the file at OneTimeFile is still that one and holds
	// that line there. Valid iff OneTimeFile != "" and Sequence is not
	// empty.
	OneTimeText string
	OneTimeInfo os.FileInfo
	// SeqTimeout is the time allowed from the first knock to the last.
	SeqTimeout time.Duration
	// Flags is the TCPFlags filter; the zero value accepts any flags.
	Flags wire.FlagFilter
	// StartCommand and StopCommand are run for IPv4 knockers, and for
	// IPv6 knockers when the _6 forms are empty. Empty means none.
	StartCommand, StopCommand string
	// StartCommand6 and StopCommand6 are the IPv6 forms.
	StartCommand6, StopCommand6 string
	// CmdTimeout is the delay between the start and the stop command.
	CmdTimeout time.Duration
	// Target is the address the knocks must be sent to. The zero value
	// means any of the host's own addresses.
	Target netip.Addr
	// NFTSet and NFTSet6 are the nftables sets (NFT_Set, NFT_Set_6)
	// that IPv4 and IPv6 knockers are added to on opening, for
	// CmdTimeout. The zero value means none.
	NFTSet, NFTSet6 NFTSet
	// IPSet and IPSet6 are the ipsets (hash:ip with timeout; IPSet,
	// IPSet_6) that IPv4 and IPv6 knockers are added to on opening, for
	// CmdTimeout. Empty means none.
	IPSet, IPSet6 string
	// Sources are the prefixes the knocks must come from (the Source
	// key): a knock from any other address counts for nothing on this
	// door. Nil means any source. Each prefix is masked, and an
	// IPv4-mapped one is given as IPv4.
	Sources []netip.Prefix
}

// NFTSet names an nftables set: NFT_Set = FAMILY TABLE SET.
type NFTSet struct {
	Family, Table, Name string
}

// String returns the set as nft names it: "inet knockd ssh4".
func (s NFTSet) String() string {
	return s.Family + " " + s.Table + " " + s.Name
}

// ParseNFTSet parses "FAMILY TABLE SET", FAMILY being one of inet, ip and
// ip6 (the families whose tables hold address sets).
func ParseNFTSet(v string) (NFTSet, error) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return NFTSet{}, fmt.Errorf("%q is not FAMILY TABLE SET: write for example inet knockd ssh4", v)
	}
	switch f[0] {
	case "inet", "ip", "ip6":
	default:
		return NFTSet{}, fmt.Errorf("family %q holds no address set: write inet, ip or ip6", f[0])
	}
	return NFTSet{Family: f[0], Table: f[1], Name: f[2]}, nil
}

// ParseIPSetName checks an ipset's name as the kernel takes it.
func ParseIPSetName(v string) (string, error) {
	if v == "" || len(v) > 31 || strings.ContainsAny(v, " \t") {
		return "", fmt.Errorf("%q is not an ipset name: 1 to 31 characters, no spaces", v)
	}
	return v, nil
}

// Derived returns a copy of the time-derived door d for step counter c,
// with that step's sequence.
func (d *Door) Derived(c uint64) *Door {
	nd := *d
	nd.Sequence = seqderive.Sequence(d.Secret, c, d.Derive)
	nd.Step = c
	return &nd
}

// ParseControlSocket checks a control socket's path: absolute, and short
// enough for a unix socket address.
func ParseControlSocket(v string) (string, error) {
	switch {
	case !filepath.IsAbs(v):
		return "", fmt.Errorf("%q is not an absolute path: write for example /run/knockd/knockd.sock", v)
	case len(v) > MaxSocketPath:
		return "", fmt.Errorf("%q is %d bytes long; a unix socket's path has room for %d: choose a shorter one", v, len(v), MaxSocketPath)
	}
	return filepath.Clean(v), nil
}

// MaxSocketPath is the longest path a unix socket address holds on Linux
// (108 bytes with the terminating NUL).
const MaxSocketPath = 107

// ParseMetricsAddress checks a metrics address: HOST:PORT with a port from
// 0 to 65535 (0 picks a free one, which the daemon logs), HOST an
// address, a name or empty for every address.
func ParseMetricsAddress(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q is not HOST:PORT: write for example 127.0.0.1:9560, or [::1]:9560", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 0 to 65535: write for example %s:9560", port, host)
	}
	return v, nil
}

// SourceOK reports whether a knock from src may count on d.
func (d *Door) SourceOK(src netip.Addr) bool {
	if d.Sources == nil {
		return true
	}
	for _, p := range d.Sources {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// Commands returns the start and stop commands for a knocker at src, with
// %IP% replaced by its address. An IPv6 knocker gets the _6 commands,
// each falling back to the plain one when unset.
func (d *Door) Commands(src netip.Addr) (start, stop string) {
	start, stop = d.StartCommand, d.StopCommand
	if src.Is6() && !src.Is4In6() {
		if d.StartCommand6 != "" {
			start = d.StartCommand6
		}
		if d.StopCommand6 != "" {
			stop = d.StopCommand6
		}
	}
	ip := src.Unmap().String()
	return strings.ReplaceAll(start, "%IP%", ip), strings.ReplaceAll(stop, "%IP%", ip)
}

// Config is a whole knockd.conf.
type Config struct {
	// Path is the file the configuration was read from.
	Path string
	// UseSyslog sends log lines to syslog.
	UseSyslog bool
	// LogFile, PidFile and Interface are the [options] of the same name;
	// empty when not given (PidFile then defaults to DefaultPidFile).
	LogFile, PidFile, Interface string
	// StateDir is the directory where pending stop commands are recorded
	// (one file each), so that they survive restarts; empty means
	// the default location chosen by the daemon.
	StateDir string
	// MaxAttempts caps the knock attempts in progress; 0 means the
	// matcher's default.
	MaxAttempts int
	// MaxCommands caps the commands running at once; 0 means the
	// runner's default.
	MaxCommands int
	// CommandLimit is how long a start or stop command may run before
	// its process group is killed; 0 means DefaultCommandLimit.
	CommandLimit time.Duration
	// LogFormat is how lines are written to the -v output and the
	// LogFile: LogText (the zero value, knockd 0.8's lines) or LogJSON.
	LogFormat LogFormat
	// ControlSocket is the path of the unix socket that answers
	// knockd --status and --revoke; empty means the daemon's default.
	ControlSocket string
	// MetricsAddress is the HOST:PORT where /metrics is served; empty
	// means no metrics.
	MetricsAddress string
	// Doors are the knock sections in file order.
	Doors []*Door
	// Warnings are problems that do not stop start-up, such as a door
	// with no command, one message each in FILE:LINE form.
	Warnings []string
}

// Error is a configuration error. It prints as
// "FILE:LINE: [section] key: message".
type Error struct {
	File    string // the file, as given to Load or Parse
	Line    int    // 0 when the error is not tied to a line
	Section string // empty when not in a section
	Key     string // empty when not about a key
	Msg     string // what is wrong and, where it helps, what would be right
	// Err is the underlying error, such as an fs.ErrNotExist for a
	// missing file, or nil. Msg already includes its text.
	Err error
}

// Unwrap returns e.Err, so that errors.Is(err, fs.ErrNotExist) and
// errors.Is(err, ErrNoSequence) see through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// Error returns the message in the form "FILE:LINE: [section] key: message",
// leaving out the parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Section != "" {
		fmt.Fprintf(&b, "[%s] ", e.Section)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LogFormat is the form of log lines on the -v output and in the LogFile.
// Syslog always gets the text form.
type LogFormat uint8

// The log formats.
const (
	// LogText writes knockd 0.8's lines. It is the zero value.
	LogText LogFormat = iota
	// LogJSON writes one JSON object per line.
	LogJSON
)

// String returns the LogFormat value that names f: "text" or "json".
func (f LogFormat) String() string {
	if f == LogJSON {
		return "json"
	}
	return "text"
}

// ParseLogFormat reads a LogFormat value or --log-format flag: "text" or
// "json", in any case.
func ParseLogFormat(s string) (LogFormat, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "text":
		return LogText, nil
	case "json":
		return LogJSON, nil
	}
	return LogText, fmt.Errorf("%q is not a log format: write text (knockd 0.8's lines, the default) or json (one JSON object per line)", s)
}

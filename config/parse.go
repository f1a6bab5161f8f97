package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
	"gopkg.in/ini.v1"
)

// Load reads the knockd.conf at path and parses it with Parse. A file
// that cannot be read gives an *Error naming path that wraps the
// underlying error (errors.Is(err, fs.ErrNotExist) works).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read the configuration: " + pathErrText(err), Err: err}
	}
	return Parse(path, data)
}

// Parse parses data, the contents of the knockd.conf at path, with the
// rules of knockd 0.8, except that input knockd would misread silently is
// rejected. path is used only in messages, as given. A door with
// One_Time_Sequences reads that file (relative to the working directory,
// as knockd does) for its first unused sequence.
//
// Every error is an *Error that names the file, the line and, where it
// applies, the section and the key. Problems that do not stop knockd from
// working, such as a door with no command, go to Config.Warnings.
func Parse(path string, data []byte) (*Config, error) {
	return parse(path, data, func(p string) ([]wire.Knock, OneTimeLine, error) {
		return ReadOneTime(p, 0)
	})
}

// oneTimeReader returns the first usable sequence of a one-time sequence
// file and where it was read. Tests and fuzzing replace ReadOneTime with
// a fake so that arbitrary input never reads arbitrary files.
type oneTimeReader func(path string) ([]wire.Knock, OneTimeLine, error)

func parse(path string, data []byte, readOneTime oneTimeReader) (*Config, error) {
	secs, src, lineErr := readLines(path, data)
	if err := readINI(path, src, secs); err != nil {
		return nil, err
	}
	b := &builder{path: path, cfg: &Config{Path: path}, readOneTime: readOneTime}
	for _, s := range secs {
		if err := b.section(s); err != nil {
			return nil, err
		}
	}
	if lineErr != nil {
		return nil, lineErr
	}
	return b.cfg, nil
}

// iniOptions make ini.v1 read a value the way knockd does: the whole rest
// of the line after the first "=", "#", ";" and quotes included, with no
// continuation lines, a bare word allowed, and every line of a repeated
// key kept in order. Key names are case-insensitive, section names keep
// their case (door names are case-sensitive), a repeated [options] stays
// a section of its own, and the child delimiter is a newline, which no
// section name can hold, so no section inherits another's keys. What
// ini.v1 reads differently from knockd is settled before it reads the
// text, in lines.go.
var iniOptions = ini.LoadOptions{
	InsensitiveKeys:            true,
	IgnoreInlineComment:        true,
	IgnoreContinuation:         true,
	AllowBooleanKeys:           true,
	AllowShadows:               true,
	AllowDuplicateShadowValues: true,
	AllowNonUniqueSections:     true,
	PreserveSurroundedQuote:    true,
	KeyValueDelimiters:         "=",
	ChildSectionDelimiter:      "\n",
}

// readINI has ini.v1 parse src, the text readLines prepared, and gives
// each section of secs its name and each entry its value as ini.v1 read
// them: the n-th line of a key in a section is the n-th of its
// ValueWithShadows. readLines hands over only what ini.v1 reads as knockd
// does, so the two always agree on the sections and keys; should they
// not, that is a bug, reported as an error rather than guessed around.
func readINI(path string, src []byte, secs []*section) *Error {
	bug := func(line int, format string, args ...any) *Error {
		return &Error{File: path, Line: line, Msg: fmt.Sprintf("gopkg.in/ini.v1 read the file otherwise than the line check in front of it ("+format+"): a bug in this knockd, please report it with the file", args...)}
	}
	f, err := ini.LoadSources(iniOptions, src)
	if err != nil {
		return bug(0, "%v", err)
	}
	// The first section is ini.v1's implicit DEFAULT, which holds the
	// lines above the first header: readLines takes none there.
	all := f.Sections()
	if len(all) != len(secs)+1 || len(all[0].Keys()) != 0 {
		return bug(0, "%d sections, not %d", len(all)-1, len(secs))
	}
	for i, is := range all[1:] {
		s := secs[i]
		s.name = is.Name()
		vals := make(map[string][]string, len(s.entries))
		for _, k := range is.Keys() {
			vals[k.Name()] = k.ValueWithShadows()
		}
		used := make(map[string]int, len(vals))
		for j := range s.entries {
			e := &s.entries[j]
			v, n := vals[e.key], used[e.key]
			if n >= len(v) {
				return bug(e.line, "[%s] has %d %s lines", s.name, len(v), e.key)
			}
			e.value = v[n]
			used[e.key] = n + 1
		}
		for k, v := range vals {
			if used[k] != len(v) {
				return bug(s.line, "[%s] has %d %s lines, not %d", s.name, len(v), k, used[k])
			}
		}
	}
	return nil
}

// keyKind says which sections a key belongs to.
type keyKind int

const (
	optionKey keyKind = iota + 1
	doorKey
)

// keyDef describes one knockd.conf key.
type keyDef struct {
	name    string  // spelling for messages
	id      string  // the key this one is an alias of, or its own lower-case name
	kind    keyKind // which section it belongs in
	example string  // a valid value, for messages
}

const (
	exampleStart = "/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT"
	exampleStop  = "/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT"
)

// keyDefs are the known keys by lower-case name.
var keyDefs = map[string]keyDef{
	"usesyslog":          {"UseSyslog", "usesyslog", optionKey, ""},
	"logfile":            {"LogFile", "logfile", optionKey, "/var/log/knockd.log"},
	"pidfile":            {"PidFile", "pidfile", optionKey, DefaultPidFile},
	"interface":          {"Interface", "interface", optionKey, "eth0"},
	"statedir":           {"StateDir", "statedir", optionKey, "/var/lib/knockd"},
	"maxattempts":        {"MaxAttempts", "maxattempts", optionKey, "10000"},
	"maxcommands":        {"MaxCommands", "maxcommands", optionKey, "16"},
	"commandlimit":       {"CommandLimit", "commandlimit", optionKey, "60"},
	"logformat":          {"LogFormat", "logformat", optionKey, "json"},
	"controlsocket":      {"ControlSocket", "controlsocket", optionKey, "/run/knockd/knockd.sock"},
	"metricsaddress":     {"MetricsAddress", "metricsaddress", optionKey, "127.0.0.1:9560"},
	"sequence":           {"Sequence", "sequence", doorKey, "7000,8000:udp,9000"},
	"one_time_sequences": {"One_Time_Sequences", "one_time_sequences", doorKey, "/etc/knockd/sequences.seq"},
	"seq_timeout":        {"Seq_Timeout", "seq_timeout", doorKey, "25"},
	"timeout":            {"Timeout", "seq_timeout", doorKey, "25"},
	"tcpflags":           {"TCPFlags", "tcpflags", doorKey, "syn,!ack"},
	"start_command":      {"Start_Command", "start_command", doorKey, exampleStart},
	"command":            {"Command", "start_command", doorKey, exampleStart},
	"start_command_6":    {"Start_Command_6", "start_command_6", doorKey, strings.Replace(exampleStart, "iptables", "ip6tables", 1)},
	"command_6":          {"Command_6", "start_command_6", doorKey, strings.Replace(exampleStart, "iptables", "ip6tables", 1)},
	"stop_command":       {"Stop_Command", "stop_command", doorKey, exampleStop},
	"stop_command_6":     {"Stop_Command_6", "stop_command_6", doorKey, strings.Replace(exampleStop, "iptables", "ip6tables", 1)},
	"cmd_timeout":        {"Cmd_Timeout", "cmd_timeout", doorKey, "10"},
	"target":             {"Target", "target", doorKey, "192.0.2.1"},
	"source":             {"Source", "source", doorKey, "192.0.2.0/24, 2001:db8::/32"},
	"nft_set":            {"NFT_Set", "nft_set", doorKey, "inet knockd ssh4"},
	"nft_set_6":          {"NFT_Set_6", "nft_set_6", doorKey, "inet knockd ssh6"},
	"ipset":              {"IPSet", "ipset", doorKey, "knock4"},
	"ipset_6":            {"IPSet_6", "ipset_6", doorKey, "knock6"},
	"sequence_secret":    {"Sequence_Secret", "sequence_secret", doorKey, "/etc/knockd/ssh.secret"},
	"sequence_length":    {"Sequence_Length", "sequence_length", doorKey, "3"},
	"sequence_ports":     {"Sequence_Ports", "sequence_ports", doorKey, "20000-26999"},
	"sequence_step":      {"Sequence_Step", "sequence_step", doorKey, "30"},
	"sequence_proto":     {"Sequence_Proto", "sequence_proto", doorKey, "tcp"},
}

// builder turns scanned sections into a Config.
type builder struct {
	path        string
	cfg         *Config
	readOneTime oneTimeReader
}

// doorState is a door being built, with the lines of the keys that the
// checks at its end refer to.
type doorState struct {
	d                 *Door
	seqLine, otsLine  int
	seqKey, otsKey    string
	stopLine, stop6Ln int
	stopKey, stop6Key string
	// secretLine is the Sequence_Secret line; deriveLine and deriveKey
	// the first of the keys that only a time-derived door takes.
	secretLine, deriveLine int
	deriveKey              string
}

func (b *builder) section(s *section) *Error {
	var ds *doorState
	if !s.options {
		ds = &doorState{d: &Door{
			Name:       s.name,
			Line:       s.line,
			SeqTimeout: DefaultSeqTimeout,
			CmdTimeout: DefaultCmdTimeout,
			Derive:     seqderive.Defaults(),
		}}
	}
	for _, e := range s.entries {
		if err := b.entry(s, ds, e); err != nil {
			return err
		}
	}
	if ds == nil || s.partial {
		return nil
	}
	if err := b.endDoor(ds); err != nil {
		return err
	}
	b.cfg.Doors = append(b.cfg.Doors, ds.d)
	return nil
}

// entry applies one key line, whose section and value readLines has
// checked.
func (b *builder) entry(s *section, ds *doorState, e entry) *Error {
	def := keyDefs[e.key]
	fail := func(key, format string, args ...any) *Error {
		return &Error{File: b.path, Line: e.line, Section: s.name, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	v := e.value

	var err error
	switch def.id {
	case "usesyslog":
		// A bare word, which ini.v1 reads as a boolean key.
		b.cfg.UseSyslog = true
	case "logfile":
		b.cfg.LogFile = v
	case "pidfile":
		b.cfg.PidFile = v
	case "interface":
		b.cfg.Interface = v
	case "statedir":
		b.cfg.StateDir = v
	case "logformat":
		b.cfg.LogFormat, err = ParseLogFormat(v)
	case "maxattempts":
		b.cfg.MaxAttempts, err = parsePositive(v)
	case "maxcommands":
		b.cfg.MaxCommands, err = parsePositive(v)
	case "commandlimit":
		var sec int64
		if sec, err = parseSeconds(v); err == nil && sec == 0 {
			err = fmt.Errorf("0 seconds would kill every command at once: give at least 1 (the default is %d)", int(DefaultCommandLimit/time.Second))
		}
		b.cfg.CommandLimit = time.Duration(sec) * time.Second
	case "controlsocket":
		b.cfg.ControlSocket, err = ParseControlSocket(v)
	case "metricsaddress":
		b.cfg.MetricsAddress, err = ParseMetricsAddress(v)

	case "sequence":
		ds.d.Sequence, err = ParseSequence(v)
		ds.seqLine, ds.seqKey = e.line, def.name
	case "one_time_sequences":
		ds.d.OneTimeFile = v
		ds.otsLine, ds.otsKey = e.line, def.name
	case "seq_timeout":
		var sec int64
		if sec, err = parseSeconds(v); err == nil && sec == 0 {
			err = fmt.Errorf("0 seconds would never let a sequence complete: give at least 1 (the default is %d)", int(DefaultSeqTimeout/time.Second))
		}
		err = with08(err, seconds08(v, true))
		ds.d.SeqTimeout = time.Duration(sec) * time.Second
	case "cmd_timeout":
		var sec int64
		sec, err = parseSeconds(v)
		err = with08(err, seconds08(v, false))
		ds.d.CmdTimeout = time.Duration(sec) * time.Second
	case "tcpflags":
		var f wire.FlagFilter
		if f, err = ParseFlags(v); err == nil {
			// Several TCPFlags lines add up, as in knockd.
			f.Set |= ds.d.Flags.Set
			f.Unset |= ds.d.Flags.Unset
			if err = checkFlags(f); err == nil {
				ds.d.Flags = f
			} else {
				err = fmt.Errorf("with the TCPFlags lines above, %w", err)
			}
		}
		// 0.8 accepts only a flag both required and excluded.
		err = with08(err, flagsAs08(ds.d.Flags, v))
	case "start_command":
		ds.d.StartCommand = v
	case "start_command_6":
		ds.d.StartCommand6 = v
	case "stop_command":
		ds.d.StopCommand = v
		ds.stopLine, ds.stopKey = e.line, def.name
	case "stop_command_6":
		ds.d.StopCommand6 = v
		ds.stop6Ln, ds.stop6Key = e.line, def.name
	case "target":
		ds.d.Target, err = parseTarget(v)
	case "ipset":
		ds.d.IPSet, err = ParseIPSetName(v)
	case "ipset_6":
		ds.d.IPSet6, err = ParseIPSetName(v)
	case "nft_set":
		if ds.d.NFTSet, err = ParseNFTSet(v); err == nil && ds.d.NFTSet.Family == "ip6" {
			err = fmt.Errorf("an ip6 table holds no IPv4 addresses: use an inet or ip table, or NFT_Set_6 for IPv6 knockers")
		}
	case "nft_set_6":
		if ds.d.NFTSet6, err = ParseNFTSet(v); err == nil && ds.d.NFTSet6.Family == "ip" {
			err = fmt.Errorf("an ip table holds no IPv6 addresses: use an inet or ip6 table, or NFT_Set for IPv4 knockers")
		}
	case "sequence_secret":
		ds.d.SecretFile = v
		ds.secretLine = e.line
	case "sequence_length", "sequence_ports", "sequence_step", "sequence_proto":
		if ds.deriveLine == 0 {
			ds.deriveLine, ds.deriveKey = e.line, def.name
		}
		err = b.deriveKey(ds.d, def.id, v)
	case "source":
		// Several Source lines add up.
		var ps []netip.Prefix
		if ps, err = ParseSources(v); err == nil {
			ds.d.Sources = append(ds.d.Sources, ps...)
		}
	}
	if err != nil {
		return fail(def.name, "%s", err)
	}
	return nil
}

// endDoor checks a door once all its lines are read, and reads its first
// one-time sequence.
func (b *builder) endDoor(ds *doorState) *Error {
	d := ds.d
	fail := func(line int, key, format string, args ...any) *Error {
		return &Error{File: b.path, Line: line, Section: d.Name, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if ds.deriveLine != 0 && ds.secretLine == 0 {
		return fail(ds.deriveLine, ds.deriveKey, "only a door with Sequence_Secret derives its sequences: add Sequence_Secret = /path/to/secret, or remove this line")
	}
	if ds.secretLine != 0 {
		if ds.seqLine != 0 || ds.otsLine != 0 {
			line, key := ds.seqLine, ds.seqKey
			if line == 0 {
				line, key = ds.otsLine, ds.otsKey
			}
			return fail(line, key, "a door has one of Sequence, One_Time_Sequences and Sequence_Secret (line %d): remove all but one", ds.secretLine)
		}
		if int(d.Derive.High)-int(d.Derive.Low)+1 < d.Derive.Length {
			return fail(ds.deriveLine, ds.deriveKey, "Sequence_Ports %d-%d holds fewer than the %d distinct ports of Sequence_Length: widen the range", d.Derive.Low, d.Derive.High, d.Derive.Length)
		}
		key, warning, err := readSecret(d.SecretFile)
		if err != nil {
			return fail(ds.secretLine, "Sequence_Secret", "%v", err)
		}
		d.Secret = key
		if warning != "" {
			b.cfg.Warnings = append(b.cfg.Warnings, fmt.Sprintf("%s:%d: [%s] Sequence_Secret: %s", b.path, ds.secretLine, d.Name, warning))
		}
	}
	if ds.secretLine == 0 {
		d.Derive = seqderive.Params{}
	}
	switch {
	case ds.secretLine != 0:
	case ds.seqLine == 0 && ds.otsLine == 0:
		return fail(d.Line, "", "has no Sequence: add Sequence = 7000,8000,9000 (or One_Time_Sequences = /path/to/file, or Sequence_Secret = /path/to/secret)")
	case ds.seqLine != 0 && ds.otsLine != 0:
		line, key := max(ds.seqLine, ds.otsLine), ds.seqKey
		if line == ds.otsLine {
			key = ds.otsKey
		}
		as08 := "used the Sequence until the first opening, then the lines of the one-time file"
		if line == ds.otsLine {
			as08 = "used the one-time file and ignored the Sequence"
		}
		return fail(line, key, "a door has either a Sequence (line %d) or One_Time_Sequences (line %d), not both: remove one; knockd 0.8 would have %s", ds.seqLine, ds.otsLine, as08)
	case ds.otsLine != 0:
		seq, at, err := b.readOneTime(d.OneTimeFile)
		if errors.Is(err, ErrBadLine) {
			// The file is data the daemon writes to, not configuration:
			// a bad line in it disables this door only.
			b.cfg.Warnings = append(b.cfg.Warnings, fmt.Sprintf("%s:%d: [%s] %s: %v: the door is disabled until the line is fixed and the configuration re-read (SIGHUP)", b.path, ds.otsLine, d.Name, ds.otsKey, err))
			break
		}
		if err != nil {
			e := fail(ds.otsLine, ds.otsKey, "%s", err)
			e.Err = err
			return e
		}
		d.Sequence, d.OneTimeOffset, d.OneTimeText, d.OneTimeInfo = seq, at.Off, at.Text, at.Info
	}

	warn := func(line int, format string, args ...any) {
		b.cfg.Warnings = append(b.cfg.Warnings, fmt.Sprintf("%s:%d: [%s] ", b.path, line, d.Name)+fmt.Sprintf(format, args...))
	}
	noStart := d.StartCommand == "" && d.StartCommand6 == ""
	noSet := d.NFTSet == NFTSet{} && d.NFTSet6 == NFTSet{} && d.IPSet == "" && d.IPSet6 == ""
	if noStart && noSet && d.StopCommand == "" && d.StopCommand6 == "" {
		warn(d.Line, "has no Start_Command: knocks will only be logged")
	}
	switch {
	case d.NFTSet != NFTSet{} && d.NFTSet6 == NFTSet{}:
		warn(d.Line, "has an NFT_Set but no NFT_Set_6: IPv6 knockers are added to no set")
	case d.NFTSet == NFTSet{} && d.NFTSet6 != NFTSet{}:
		warn(d.Line, "has an NFT_Set_6 but no NFT_Set: IPv4 knockers are added to no set")
	}
	switch {
	case d.IPSet != "" && d.IPSet6 == "":
		warn(d.Line, "has an IPSet but no IPSet_6: IPv6 knockers are added to no ipset")
	case d.IPSet == "" && d.IPSet6 != "":
		warn(d.Line, "has an IPSet_6 but no IPSet: IPv4 knockers are added to no ipset")
	}
	if d.StopCommand != "" && d.StartCommand == "" {
		warn(ds.stopLine, "has a %s but no Start_Command", ds.stopKey)
	}
	if d.StopCommand6 != "" && noStart {
		warn(ds.stop6Ln, "has a %s but no Start_Command_6 or Start_Command", ds.stop6Key)
	}
	return nil
}

// readSecret reads a Sequence_Secret file; tests replace it.
var readSecret = ReadSecret

// deriveKey sets the time-derived door key id of d from v.
func (b *builder) deriveKey(d *Door, id, v string) error {
	var err error
	switch id {
	case "sequence_length":
		var n int
		if n, err = parsePositive(v); err == nil && n > seqderive.MaxLength {
			err = fmt.Errorf("%d knocks is too many: at most %d", n, seqderive.MaxLength)
		}
		d.Derive.Length = n
	case "sequence_ports":
		d.Derive.Low, d.Derive.High, err = seqderive.ParseRange(v)
	case "sequence_step":
		var sec int64
		if sec, err = parseSeconds(v); err == nil && time.Duration(sec)*time.Second < seqderive.MinStep {
			err = fmt.Errorf("%d seconds is too short a step: give at least %d (the default is %d)", sec, int(seqderive.MinStep/time.Second), int(seqderive.DefaultStep/time.Second))
		}
		d.Derive.Step = time.Duration(sec) * time.Second
	case "sequence_proto":
		d.Derive.Proto, err = seqderive.ParseProto(v)
	}
	return err
}

// maxSeconds bounds timeouts so that they fit a time.Duration with room
// to spare: 68 years.
const maxSeconds = math.MaxInt32

// parseSeconds parses a timeout: a whole, non-negative number of seconds.
func parseSeconds(v string) (int64, error) {
	if strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a whole number of seconds: write digits only, for example 25", v)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxSeconds {
		return 0, fmt.Errorf("%s seconds is too long: at most %d", v, maxSeconds)
	}
	return n, nil
}

// parsePositive parses a count: a whole number of at least 1.
func parsePositive(v string) (int, error) {
	n, err := strconv.ParseInt(v, 10, 32)
	if strings.Trim(v, "0123456789") != "" || err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is not a whole number: write digits only, for example 100", v)
	}
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s is out of range: give a number from 1 to %d", v, math.MaxInt32)
	}
	return int(n), nil
}

// parseTarget parses a Target address.
func parseTarget(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address: write one address, such as 192.0.2.1 or 2001:db8::1", v)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone: packets carry none, write the address alone (%s)", v, a.WithZone(""))
	}
	// An IPv4-mapped address names the IPv4 host that packets reach.
	return a.Unmap(), nil
}

// suggest returns " (did you mean X?)" for the known key nearest to key,
// preferring keys of the section at hand, or a list of the keys that
// belong there when none is near.
func suggest(key string, options bool) string {
	want := doorKey
	if options {
		want = optionKey
	}
	// Separators are the likeliest slip (pid_file, start-command,
	// command6), so they count only to break ties.
	plain := strings.NewReplacer("_", "", "-", "", " ", "")
	pkey := plain.Replace(key)
	type score struct{ plain, full int }
	best, bestScore := "", score{math.MaxInt, math.MaxInt}
	other := optionKey
	if options {
		other = doorKey
	}
	for _, kind := range []keyKind{want, other} {
		for k, d := range keyDefs {
			if d.kind != kind {
				continue
			}
			sc := score{editDistance(pkey, plain.Replace(k)), editDistance(key, k)}
			if sc.plain < bestScore.plain || sc.plain == bestScore.plain &&
				(sc.full < bestScore.full || sc.full == bestScore.full && d.name < best) {
				best, bestScore = d.name, sc
			}
		}
		if bestScore.plain <= max(2, len(pkey)/4) {
			return fmt.Sprintf(" (did you mean %s?)", best)
		}
	}
	var names []string
	for _, d := range keyDefs {
		if d.kind == want {
			names = append(names, d.name)
		}
	}
	sort.Strings(names)
	where := "a door section"
	if options {
		where = "[options]"
	}
	return fmt.Sprintf("; the keys of %s are %s", where, strings.Join(names, ", "))
}

// editDistance returns the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	// Config keys are short; an absurdly long bogus key only needs to
	// come out as "far".
	if len(a) > 64 {
		return len(a)
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

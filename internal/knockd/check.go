package knockd

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/exec"
	"github.com/knock-go/knock/listener"
	"github.com/knock-go/knock/match"
	"github.com/knock-go/knock/seqderive"
	"github.com/knock-go/knock/wire"
)

// check is knockd --check: it reads the configuration, prints each door
// and what the configured backend would need, and returns the
// configuration error if there is one. It binds nothing, opens no socket,
// log file, capture or state, and runs no command, so that it can run
// beside the daemon, before a swap or a reload.
func check(opts Options) error {
	out, errs := opts.Stdout, opts.Stderr
	if out == nil {
		out = os.Stdout
	}
	if errs == nil {
		errs = os.Stderr
	}
	path := opts.ConfigPath
	if path == "" {
		path = "/etc/knockd.conf"
	}
	if err := checkBackend(opts.Backend); err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if _, err := (&daemon{opts: opts}).jsonLogs(cfg); err != nil {
		return err
	}
	c := &checker{opts: opts, cfg: cfg, out: out, errs: errs}
	for _, w := range cfg.Warnings {
		c.warn("%s", w)
	}
	c.options()
	for _, d := range cfg.Doors {
		c.door(d)
	}
	c.backend()
	c.state()
	doors := "doors"
	if len(cfg.Doors) == 1 {
		doors = "door"
	}
	fmt.Fprintf(out, "\n%s: %d %s, no errors; nothing was bound, opened or run\n", path, len(cfg.Doors), doors)
	return nil
}

// checker prints the report of check.
type checker struct {
	opts Options
	cfg  *config.Config
	out  io.Writer
	errs io.Writer
}

// warn writes a warning to standard error, as start-up would.
func (c *checker) warn(format string, args ...any) {
	fmt.Fprintf(c.errs, "warning: "+format+"\n", args...)
}

// table prints rows of "key: value" with the values aligned.
func (c *checker) table(title string, rows [][2]string) {
	fmt.Fprintf(c.out, "%s\n", title)
	tw := tabwriter.NewWriter(c.out, 0, 0, 1, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s:\t%s\n", r[0], r[1])
	}
	tw.Flush()
}

// interfaces returns -i or Interface, and the names it lists (none for
// any).
func (c *checker) interfaces() (string, []string) {
	iface := (&daemon{opts: c.opts}).interfaceOf(c.cfg)
	if iface == "" || iface == "any" {
		return "any", nil
	}
	return iface, strings.Split(iface, ",")
}

func (c *checker) options() {
	orDefault := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	syslog := "no"
	if c.cfg.UseSyslog {
		syslog = "yes"
	}
	logFile := (&daemon{opts: c.opts}).logFile(c.cfg)
	pid := orDefault(orDefault(c.opts.PidFile, c.cfg.PidFile), config.DefaultPidFile) + " (written with -d)"
	iface, _ := c.interfaces()
	if iface == "any" {
		iface = "any: every interface (knockd 0.8 would listen on eth0 only)"
	}
	if c.opts.IPv4Only {
		iface += "; IPv4 only (-4)"
	}
	count := func(n, def int) string {
		if n == 0 {
			return fmt.Sprintf("%d (default)", def)
		}
		return fmt.Sprint(n)
	}
	c.table("[options]", [][2]string{
		{"UseSyslog", syslog},
		{"LogFile", orDefault(logFile, "none")},
		{"LogFormat", c.logFormat()},
		{"PidFile", pid},
		{"Interface", iface},
		{"MaxAttempts", count(c.cfg.MaxAttempts, match.DefaultMaxAttempts)},
		{"MaxCommands", count(c.cfg.MaxCommands, exec.DefaultMaxRunning)},
		{"ControlSocket", c.controlSocket()},
		{"MetricsAddress", orDefault(orDefault(c.opts.Metrics, c.cfg.MetricsAddress), "none (metrics off)")},
	})
}

// controlSocket describes where --status and --revoke will find the
// daemon.
func (c *checker) controlSocket() string {
	path, err := ControlPath(c.opts.Control, c.cfg, c.opts.ConfigPath)
	if err != nil {
		return "none: " + err.Error()
	}
	return path + " (mode 0600; answers this uid and root)"
}

// logFormat describes the form of the -v and LogFile lines.
func (c *checker) logFormat() string {
	json, err := (&daemon{opts: c.opts}).jsonLogs(c.cfg)
	switch {
	case err != nil:
		return err.Error()
	case json:
		return "json (one JSON object per line; syslog keeps the text)"
	}
	return "text"
}

func (c *checker) door(d *config.Door) {
	seconds := func(t time.Duration) string { return fmt.Sprintf("%d s", int64(t/time.Second)) }
	cmd := func(v, fallback, fallbackName string) string {
		switch {
		case v != "":
			return v
		case fallback != "":
			return "none: IPv6 knockers get " + fallbackName
		}
		return "none"
	}
	var rows [][2]string
	if d.SecretFile != "" {
		p := d.Derive
		now := seqderive.Counter(time.Now(), p.Step)
		rows = append(rows, [2]string{"Sequence_Secret", d.SecretFile},
			[2]string{"  derived", fmt.Sprintf("%d %s knocks from %d-%d, a new sequence every %s; the previous, current and next are accepted, each once", p.Length, p.Proto, p.Low, p.High, seconds(p.Step))},
			[2]string{"  current sequence", fmt.Sprintf("step %d: %s", now, knocks(d.Derived(now).Sequence))})
	} else if d.OneTimeFile != "" {
		seq := knocks(d.Sequence)
		if _, _, line, err := config.NextOneTime(d.OneTimeFile, d.OneTimeOffset); err == nil {
			seq = fmt.Sprintf("line %d: %s", line, seq)
		}
		rows = append(rows, [2]string{"One_Time_Sequences", d.OneTimeFile}, [2]string{"  current sequence", seq})
	} else {
		rows = append(rows, [2]string{"Sequence", knocks(d.Sequence)})
	}
	flags := d.Flags.String()
	if flags == "" {
		flags = "any (no TCPFlags)"
	}
	target := "any address of this host"
	if d.Target.IsValid() {
		target = d.Target.String()
	}
	source := "any source"
	if d.Sources != nil {
		ps := make([]string, len(d.Sources))
		for i, p := range d.Sources {
			ps[i] = p.String()
		}
		source = strings.Join(ps, ", ")
	}
	stopping := d.StopCommand != "" || d.StopCommand6 != ""
	cmdTimeout := seconds(d.CmdTimeout)
	hasNFT := d.NFTSet != (config.NFTSet{}) || d.NFTSet6 != (config.NFTSet{})
	hasIPSet := d.IPSet != "" || d.IPSet6 != ""
	hasSet := hasNFT || hasIPSet
	if !stopping && !hasSet {
		cmdTimeout += " (unused: no Stop_Command)"
	}
	rows = append(rows,
		[2]string{"Seq_Timeout", seconds(d.SeqTimeout)},
		[2]string{"TCPFlags", flags},
		[2]string{"Target", target},
		[2]string{"Source", source},
		[2]string{"Start_Command", cmd(d.StartCommand, "", "")},
		[2]string{"Start_Command_6", cmd(d.StartCommand6, d.StartCommand, "Start_Command")},
		[2]string{"Cmd_Timeout", cmdTimeout},
		[2]string{"Stop_Command", cmd(d.StopCommand, "", "")},
		[2]string{"Stop_Command_6", cmd(d.StopCommand6, d.StopCommand, "Stop_Command")},
	)
	if hasNFT {
		set := func(s config.NFTSet, family string) string {
			if s == (config.NFTSet{}) {
				return "none: " + family + " knockers are added to no set"
			}
			return "nft set " + s.String() + ", each knocker for Cmd_Timeout (the kernel closes it)"
		}
		rows = append(rows,
			[2]string{"NFT_Set", set(d.NFTSet, "IPv4")},
			[2]string{"NFT_Set_6", set(d.NFTSet6, "IPv6")},
		)
	}
	if hasIPSet {
		set := func(s, family string) string {
			if s == "" {
				return "none: " + family + " knockers are added to no ipset"
			}
			return "ipset " + s + ", each knocker for Cmd_Timeout (the kernel closes it)"
		}
		rows = append(rows,
			[2]string{"IPSet", set(d.IPSet, "IPv4")},
			[2]string{"IPSet_6", set(d.IPSet6, "IPv6")},
		)
	}
	fmt.Fprintln(c.out)
	c.table(fmt.Sprintf("[%s] (%s:%d)", d.Name, c.cfg.Path, d.Line), rows)
}

// knocks prints a sequence in the knockd.conf form.
func knocks(seq []wire.Knock) string {
	s := make([]string, len(seq))
	for i, k := range seq {
		s[i] = k.String()
	}
	return strings.Join(s, ",")
}

// backend prints what the backend asked for would need, and whether this
// process has it.
func (c *checker) backend() {
	_, ifaces := c.interfaces()
	raw := hasCapability(capNetRaw)
	fmt.Fprintln(c.out)
	switch c.opts.Backend {
	case "", "auto":
		choice := "listener, as this process " + raw.String() + " CAP_NET_RAW"
		if raw == capYes {
			choice = "raw, as this process has CAP_NET_RAW"
		}
		fmt.Fprintf(c.out, "backend: auto: would take %s\n", choice)
		c.raw(raw, ifaces, false)
		c.listener(ifaces, raw != capYes)
	case "raw":
		fmt.Fprintln(c.out, "backend: raw")
		c.raw(raw, ifaces, true)
	case "listener":
		fmt.Fprintln(c.out, "backend: listener")
		c.listener(ifaces, true)
	}
}

// raw prints what the raw backend needs. chosen says whether start-up
// would take it whatever this process may do (--backend raw).
func (c *checker) raw(has capState, ifaces []string, chosen bool) {
	fmt.Fprintf(c.out, "  raw: needs CAP_NET_RAW (setcap cap_net_raw+ep, or root): this process %s it\n", has)
	if chosen && has == capNo {
		c.warn("the raw backend needs CAP_NET_RAW, which this process does not have: start-up would fail (setcap cap_net_raw+ep knockd, run as root, or use --backend listener)")
	}
	for _, name := range ifaces {
		if ok, known := linkExists(name); known && !ok {
			fmt.Fprintf(c.out, "  raw: interface %s does not exist: the raw backend waits for it (knockd 0.8 would exit)\n", name)
		}
	}
}

// listener prints what the listener backend would bind and need, and
// the doors it cannot serve. chosen says whether start-up would take it.
func (c *checker) listener(ifaces []string, chosen bool) {
	name := "listener"
	if !chosen {
		name = "listener (the fallback)"
	}
	warn := func(format string, args ...any) {
		fmt.Fprintf(c.out, "  "+name+": "+format+"\n", args...)
		if chosen {
			c.warn(format, args...)
		}
	}
	// The doors as the matcher would start them: a time-derived door
	// with the sequences of its steps now.
	doors := match.New(c.cfg.Doors, match.Options{MaxAttempts: 1}).Doors()
	spec := capture.NewSpec(doors, ifaces, c.opts.IPv4Only)
	where := "every address (0.0.0.0 and [::])"
	if c.opts.IPv4Only {
		where = "every IPv4 address (0.0.0.0)"
	}
	if len(ifaces) > 0 {
		where = "the addresses of " + strings.Join(ifaces, ", ")
	}
	fmt.Fprintf(c.out, "  %s: would bind, and so show open to a port scanner:\n", name)
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	start := unprivilegedPortStart()
	var low []string
	for _, p := range spec.Ports {
		on := where
		if p.Targets != nil {
			on = strings.Join(addrs(p.Targets), ", ") + " (Target)"
		}
		fmt.Fprintf(tw, "    %s %d\t%s\ton %s\n", p.Proto, p.Port, strings.Join(p.Doors, ", "), on)
		if int(p.Port) < start {
			low = append(low, fmt.Sprintf("%s %d", p.Proto, p.Port))
		}
	}
	tw.Flush()
	if len(low) > 0 {
		bind := hasCapability(capNetBindService)
		line := fmt.Sprintf("ports below %d (%s) need CAP_NET_BIND_SERVICE: this process %s it", start, strings.Join(low, ", "), bind)
		if bind == capNo {
			warn("%s: start-up would fail (setcap cap_net_bind_service+ep knockd, run as root, or use --backend raw)", line)
		} else {
			fmt.Fprintf(c.out, "  %s: %s\n", name, line)
		}
	}
	for _, d := range c.cfg.Doors {
		if why := listener.Unsupported(d); why != "" {
			warn("door %s: %s", d.Name, why)
		}
	}
	for _, n := range ifaces {
		if ok, known := linkExists(n); known && !ok {
			warn("interface %s does not exist: start-up would fail", n)
		}
	}
}

func addrs(as []netip.Addr) []string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return s
}

// state prints whether a state directory is needed: only for doors with
// a stop command, whose pending runs are recorded there.
func (c *checker) state() {
	var doors, derived []string
	for _, d := range c.cfg.Doors {
		if d.StopCommand != "" || d.StopCommand6 != "" {
			doors = append(doors, d.Name)
		}
		if d.SecretFile != "" {
			derived = append(derived, d.Name)
		}
	}
	fmt.Fprintln(c.out)
	if len(doors) == 0 && len(derived) == 0 {
		fmt.Fprintln(c.out, "state: no door has a Stop_Command or a Sequence_Secret: no state directory is needed")
		return
	}
	dir := "the default location (set StateDir in [options] or --state-dir to choose)"
	switch {
	case c.opts.StateDir != "":
		dir = c.opts.StateDir + " (--state-dir)"
	case c.cfg.StateDir != "":
		dir = c.cfg.StateDir + " (StateDir)"
	}
	if len(doors) > 0 {
		fmt.Fprintf(c.out, "state: pending stop commands of %s are kept in %s, which must be writable\n", strings.Join(doors, ", "), dir)
	}
	if len(derived) > 0 {
		fmt.Fprintf(c.out, "state: the used steps of %s are kept in %s, which must be writable\n", strings.Join(derived, ", "), dir)
	}
}

// capState is what is known of one capability of this process.
type capState int

const (
	capUnknown capState = iota
	capNo
	capYes
)

func (s capState) String() string {
	switch s {
	case capYes:
		return "has"
	case capNo:
		return "does not have"
	}
	return "may or may not have (unknown on this system)"
}

// interfaceExists reports whether the network interface name exists now;
// known is false when the interfaces cannot be listed.
func interfaceExists(name string) (ok, known bool) {
	ifis, err := net.Interfaces()
	if err != nil {
		return false, false
	}
	return slices.ContainsFunc(ifis, func(i net.Interface) bool { return i.Name == name }), true
}

// warnMissingInterfaces warns, at start, of each interface named with -i
// or Interface that does not exist yet, in every log output: the raw
// backend waits for it, where knockd 0.8 would exit.
func (d *daemon) warnMissingInterfaces(ifaces []string) {
	if d.src.Name() != "raw" {
		return
	}
	for _, name := range ifaces {
		if ok, known := interfaceExists(name); known && !ok {
			d.log.Error("warning: interface %s does not exist: waiting for it to appear (knockd 0.8 would exit)", name)
		}
	}
}

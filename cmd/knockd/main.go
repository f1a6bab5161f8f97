// Command knockd is a port-knocking daemon compatible with knockd 0.8.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/knock-go/knock/internal/cmdline"
	"github.com/knock-go/knock/internal/knockd"
)

// version is the knockd release this daemon replaces; set with
// -ldflags "-X main.version=...".
var version = "0.8"

// usageColumn is where knockd 0.8's usage starts the descriptions.
const usageColumn = 25

func init() {
	// knockd prints knockd 0.8's usage itself; urfave/cli must not claim
	// -h/--help.
	cli.HelpFlag = nil
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// newApp defines knockd's command line: the flags, their help, and what
// they do. The help is printed in knockd 0.8's order and words; a
// backquoted word in a Usage names the flag's value.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:           "knockd",
		Usage:          "port-knock server",
		UsageText:      "knockd [options]",
		HideHelp:       true,
		HideVersion:    true,
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "network `int`erface to listen on (default \"any\"; or a comma-separated list)"},
			&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run as a daemon"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "/etc/knockd.conf", Usage: "use an alternate config `file`"},
			&cli.BoolFlag{Name: "debug", Aliases: []string{"D"}, Usage: "output debug messages"},
			&cli.BoolFlag{Name: "lookup", Aliases: []string{"l"}, Usage: "lookup DNS names (may be a security risk)"},
			// No `name` in these two: knockd 0.8's help shows none.
			&cli.StringFlag{Name: "pidfile", Aliases: []string{"p"}, Usage: "use an alternate pidfile"},
			&cli.StringFlag{Name: "logfile", Aliases: []string{"g"}, Usage: "use an alternate logfile"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "be verbose"},
			&cli.BoolFlag{Name: "only-ip-v4", Aliases: []string{"4"}, Usage: "do not track ipv6"},
			&cli.BoolFlag{Name: "check", Aliases: []string{"t"}, Category: cmdline.AddedCategory, Usage: "check the configuration and exit: print each door, bind nothing"},
			&cli.StringFlag{Name: "backend", Value: "auto", Category: cmdline.AddedCategory, Usage: "`how` to capture: auto (default), raw (AF_PACKET, needs CAP_NET_RAW) or listener (bound sockets, no privileges)"},
			&cli.StringFlag{Name: "state-dir", Category: cmdline.AddedCategory, Usage: "keep pending stop commands in `dir` (default: StateDir in the config, else a directory named after the config file under $STATE_DIRECTORY, /var/lib/knockd for root, or ~/.local/state/knockd)"},
			&cli.StringFlag{Name: "log-format", Category: cmdline.AddedCategory, Usage: "write the -v, -D and LogFile lines as `fmt`: text (default: LogFormat in the config, else text) or json (one object per line; syslog keeps the text)"},
			&cli.StringFlag{Name: "replay", Category: cmdline.AddedCategory, Usage: "read the knocks of a pcap or pcapng `file` (tcpdump -w) and print what the daemon would log, in the capture's time; runs nothing, writes nothing, needs no privileges"},
			&cli.StringFlag{Name: "control", Category: cmdline.AddedCategory, Usage: "the control socket is `path` (default: ControlSocket in the config, else one named after the config file under $RUNTIME_DIRECTORY, /run/knockd for root, or $XDG_RUNTIME_DIR/knockd)"},
			&cli.StringFlag{Name: "metrics", Category: cmdline.AddedCategory, Usage: "serve Prometheus metrics at http://`addr`/metrics, addr being host:port (default: MetricsAddress in the config, else none)"},
			&cli.BoolFlag{Name: "status", Category: cmdline.AddedCategory, Usage: "ask the running knockd for its doors, openings, attempts and counters, and exit"},
			&cli.BoolFlag{Name: "json", Category: cmdline.AddedCategory, Usage: "with --status: print one JSON document"},
			&cli.StringFlag{Name: "revoke", Category: cmdline.AddedCategory, Usage: "close the openings of `ip` now (running their stop commands), and exit"},
			&cli.StringFlag{Name: "door", Category: cmdline.AddedCategory, Usage: "with --revoke: only on the door `name`d"},
			&cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "display version"},
			&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "this help"},
		},
		Action: action,
	}
}

// run runs knockd with args (program name first) and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	defer startProfile()()
	app := newApp(stdout, stderr)
	canon, err := cmdline.Normalize(app.Flags, args[1:])
	if err != nil {
		// As knockd 0.8: getopt's complaint, the usage, and status 0.
		fmt.Fprintf(stderr, "%s: %v\n", args[0], err)
		cmdline.WriteUsage(stdout, app, usageColumn)
		return 0
	}
	err = app.Run(append([]string{args[0]}, canon...))
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "knockd:", err)
	return 1
}

func action(c *cli.Context) error {
	if !c.Bool("debug") {
		// Only libraries write to the standard logger (vishvananda/netlink
		// notes each ipset attribute it does not know, at every set
		// check); knockd's own lines go through its logger. Keep them
		// for -D.
		log.SetOutput(io.Discard)
	}
	switch {
	case c.Bool("version"):
		fmt.Fprint(c.App.Writer, cmdline.VersionText("knockd", version))
		return nil
	case c.Bool("help"):
		cmdline.WriteUsage(c.App.Writer, c.App, usageColumn)
		return nil
	}
	// knockd 0.8 ignores operands without a word; say so.
	for _, a := range c.Args().Slice() {
		fmt.Fprintf(c.App.ErrWriter, "knockd: warning: ignoring argument %q: knockd takes options only\n", a)
	}
	if c.Bool("status") || c.IsSet("revoke") {
		if c.IsSet("config") && c.String("config") == "" {
			return cli.Exit(`knockd: -c "": no configuration file named (give its path, or leave -c out for /etc/knockd.conf)`, 1)
		}
		if c.IsSet("revoke") && c.String("revoke") == "" {
			return cli.Exit(`knockd: --revoke "": give the knocker's IP address`, 1)
		}
		err := knockd.Client(knockd.ClientOptions{
			ConfigPath: c.String("config"),
			Control:    c.String("control"),
			JSON:       c.Bool("json"),
			Revoke:     c.String("revoke"),
			Door:       c.String("door"),
			Stdout:     c.App.Writer,
		})
		if err != nil {
			return cli.Exit("knockd: "+err.Error(), 1)
		}
		return nil
	}
	switch {
	case c.Bool("json"):
		return cli.Exit("knockd: --json goes with --status", 1)
	case c.IsSet("door"):
		return cli.Exit("knockd: --door goes with --revoke", 1)
	}
	opts := knockd.Options{
		ConfigPath: c.String("config"),
		Interface:  c.String("interface"),
		PidFile:    c.String("pidfile"),
		LogFile:    c.String("logfile"),
		Backend:    c.String("backend"),
		StateDir:   c.String("state-dir"),
		Daemon:     c.Bool("daemon"),
		Debug:      c.Bool("debug"),
		Lookup:     c.Bool("lookup"),
		Verbose:    c.Bool("verbose"),
		IPv4Only:   c.Bool("only-ip-v4"),
		Check:      c.Bool("check"),
		LogFormat:  c.String("log-format"),
		Replay:     c.String("replay"),
		Control:    c.String("control"),
		Metrics:    c.String("metrics"),
	}
	if c.IsSet("replay") && opts.Replay == "" {
		return cli.Exit(`knockd: --replay "": no capture file named (give the file tcpdump -w wrote)`, 1)
	}
	if c.IsSet("config") && opts.ConfigPath == "" {
		// knockd 0.8 fails to open "", where knockd.Run would read the
		// default file: say so rather than start on another file.
		return cli.Exit(`knockd: -c "": no configuration file named (give its path, or leave -c out for /etc/knockd.conf)`, 1)
	}
	if opts.Replay != "" {
		// A replay runs in the foreground, whatever -d says.
		opts.Daemon = false
	}
	if opts.Daemon && !opts.Check && os.Getenv(childEnv) == "" {
		if err := daemonize(); err != nil {
			return cli.Exit("knockd: "+err.Error(), 1)
		}
		return nil
	}
	if opts.Daemon {
		opts.Ready = readyPipe()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	opts.Reload = reload
	if err := knockd.Run(ctx, opts); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return nil
}

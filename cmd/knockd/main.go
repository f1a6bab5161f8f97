// Command knockd is a port-knocking daemon compatible with knockd 0.8.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/knock-go/knock/internal/knockd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.8-go"

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	defer startProfile()()
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Usage: "display version"}
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "knockd %s\n", c.App.Version)
	}
	app := &cli.App{
		Name:                   "knockd",
		Usage:                  "port-knock server",
		UsageText:              "knockd [options]",
		Version:                version,
		HideHelpCommand:        true,
		UseShortOptionHandling: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "interface", Aliases: []string{"i"}, Usage: "network interface to listen on: a name, a comma-separated list, or any (default: Interface in the config, else any)"},
			&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run as a daemon"},
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "/etc/knockd.conf", Usage: "use an alternate config file"},
			&cli.BoolFlag{Name: "debug", Aliases: []string{"D"}, Usage: "output debug messages"},
			&cli.BoolFlag{Name: "lookup", Aliases: []string{"l"}, Usage: "lookup DNS names (may be a security risk)"},
			&cli.StringFlag{Name: "pidfile", Aliases: []string{"p"}, Usage: "use an alternate pidfile"},
			&cli.StringFlag{Name: "logfile", Aliases: []string{"g"}, Usage: "use an alternate logfile"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "be verbose"},
			&cli.BoolFlag{Name: "only-ip-v4", Aliases: []string{"4"}, Usage: "capture IPv4 only"},
			&cli.StringFlag{Name: "backend", Value: "auto", Usage: "capture backend: auto, raw (AF_PACKET, needs CAP_NET_RAW) or listener (bound sockets, no privileges)"},
			&cli.BoolFlag{Name: "check", Aliases: []string{"t"}, Usage: "check the configuration: print each door and what the backend needs, bind nothing, exit 0, or 1 on errors"},
			&cli.StringFlag{Name: "state-dir", Usage: "directory for pending stop commands (default: StateDir in the config, $STATE_DIRECTORY, /var/lib/knockd for root, else ~/.local/state/knockd)"},
		},
		Action: action,
	}
	if err := app.Run(args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "knockd:", err)
		return 1
	}
	return 0
}

func action(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("knockd: unexpected argument %q (see knockd -h)", c.Args().First()), 1)
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

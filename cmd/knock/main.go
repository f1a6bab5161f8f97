// Command knock sends a port-knocking sequence to a host. It takes knock
// 0.8's command line:
//
//	knock [options] <host> <port[:proto]> [port[:proto]] ...
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/knock-go/knock/internal/cmdline"
	"github.com/knock-go/knock/internal/knockcmd"
	"github.com/knock-go/knock/seqderive"
)

// version is the knock release this client mirrors; set with
// -ldflags "-X main.version=...".
var version = "0.8"

func init() {
	// knock prints knock 0.8's usage text itself, for -h as for a bad
	// command line; urfave/cli must not claim -h/--help.
	cli.HelpFlag = nil
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	var sig atomic.Value
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		sig.Store(s)
		cancel()
	}()

	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	if s, ok := sig.Load().(syscall.Signal); ok && code != 0 {
		code = 128 + int(s)
	}
	os.Exit(code)
}

// flags are knock's options, in the order of knock 0.8's usage. A
// backquoted word in a Usage names the flag's value.
type flags struct {
	verbose, udp, help, version, ipv4, ipv6, print bool
	delay, timeout                                 string
	secretFile, length, ports, step, proto, time   string
}

func (f *flags) list() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "udp", Aliases: []string{"u"}, Destination: &f.udp, Usage: "make all ports hits use UDP (default is TCP)"},
		// Strings, so that knockcmd words the errors.
		&cli.StringFlag{Name: "delay", Aliases: []string{"d"}, Destination: &f.delay, Usage: "wait `<t>` milliseconds between port hits"},
		&cli.BoolFlag{Name: "ipv4", Aliases: []string{"4"}, Destination: &f.ipv4, Usage: "Force usage of IPv4"},
		&cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Destination: &f.ipv6, Usage: "Force usage of IPv6"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Destination: &f.verbose, Usage: "be verbose"},
		&cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Destination: &f.version, Usage: "display version"},
		&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Destination: &f.help, Usage: "this help"},
		&cli.StringFlag{Name: "timeout", Destination: &f.timeout, Category: cmdline.AddedCategory, Usage: "wait at most `<t>` milliseconds for each TCP knock\n(default 500; 0 sends the SYN and moves on at once)"},
		&cli.StringFlag{Name: "secret-file", Destination: &f.secretFile, Category: cmdline.AddedCategory, Usage: "knock the sequence derived from the base32 secret in `<path>`\nand the time, for a door with Sequence_Secret; give the host alone"},
		&cli.StringFlag{Name: "length", Destination: &f.length, Category: cmdline.AddedCategory, Usage: "with --secret-file: `<n>` knocks (default 3)"},
		&cli.StringFlag{Name: "ports", Destination: &f.ports, Category: cmdline.AddedCategory, Usage: "with --secret-file: ports from `<low-high>` (default 20000-26999)"},
		&cli.StringFlag{Name: "step", Destination: &f.step, Category: cmdline.AddedCategory, Usage: "with --secret-file: a new sequence every `<s>` seconds (default 30)"},
		&cli.StringFlag{Name: "proto", Destination: &f.proto, Category: cmdline.AddedCategory, Usage: "with --secret-file: knock with `<tcp|udp>` (default tcp)"},
		&cli.StringFlag{Name: "time", Destination: &f.time, Category: cmdline.AddedCategory, Usage: "with --secret-file: derive for Unix time `<t>`, or +N/-N seconds from now"},
		&cli.BoolFlag{Name: "print", Destination: &f.print, Category: cmdline.AddedCategory, Usage: "with --secret-file: print the host and the ports for any knock\nclient, and send nothing"},
	}
}

// usageText is knock 0.8's synopsis.
const usageText = "knock [options] <host> <port[:proto]> [port[:proto]] ..."

// derivedUsage is the synopsis of a knock on a time-derived door, shown
// after knock 0.8's usage.
const derivedUsage = "        knock [options] --secret-file <path> [--print] <host>\n"

// usageColumn is where knock 0.8's usage starts the descriptions.
const usageColumn = 23

// usage is knock 0.8's usage text, with the options of app.
func usage(app *cli.App) string {
	var b strings.Builder
	cmdline.WriteUsage(&b, app, usageColumn)
	b.WriteString("example:  knock myserver.example.com 123:tcp 456:udp 789:tcp\n\n")
	for _, fl := range app.Flags {
		if slices.Contains(fl.Names(), "secret-file") {
			b.WriteString("time-derived doors:\n" + derivedUsage + "\n")
		}
	}
	return b.String()
}

// derivedOnly reports whether a flag that only --secret-file uses is set.
func derivedOnly(c *cli.Context) bool {
	for _, n := range []string{"length", "ports", "step", "proto", "time", "print"} {
		if c.IsSet(n) {
			return true
		}
	}
	return false
}

// derive returns the ports of the time-derived sequence the flags ask
// for.
func (f *flags) derive(c *cli.Context) ([]string, error) {
	d := knockcmd.Derive{SecretFile: f.secretFile, Params: seqderive.Defaults()}
	var err error
	if c.IsSet("length") {
		if d.Params.Length, err = knockcmd.ParseLength(f.length); err != nil {
			return nil, err
		}
	}
	if c.IsSet("ports") {
		if d.Params.Low, d.Params.High, err = seqderive.ParseRange(f.ports); err != nil {
			return nil, fmt.Errorf("knock: --ports: %w", err)
		}
	}
	if c.IsSet("step") {
		if d.Params.Step, err = knockcmd.ParseStep(f.step); err != nil {
			return nil, err
		}
	}
	if c.IsSet("proto") {
		if d.Params.Proto, err = seqderive.ParseProto(f.proto); err != nil {
			return nil, fmt.Errorf("knock: --proto: %w", err)
		}
	}
	if c.IsSet("time") {
		if d.Time, err = knockcmd.ParseTime(f.time, time.Now()); err != nil {
			return nil, err
		}
	}
	return d.Ports()
}

// run runs knock with args (program name first) and returns the exit
// status, 0 or 1 as knock 0.8 returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f flags
	var family knockcmd.Family
	app := &cli.App{
		Name:           "knock",
		Usage:          "send a port-knocking sequence",
		UsageText:      usageText,
		HideHelp:       true,
		HideVersion:    true,
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Flags:          f.list(),
		Action: func(c *cli.Context) error {
			switch {
			case f.help:
				return &knockcmd.UsageError{}
			case f.version:
				fmt.Fprint(stdout, cmdline.VersionText("knock", version))
				return nil
			case f.secretFile == "" && derivedOnly(c):
				return &knockcmd.UsageError{Msg: "--length, --ports, --step, --proto, --time and --print go with --secret-file"}
			case f.secretFile != "" && c.NArg() != 1:
				return &knockcmd.UsageError{Msg: "with --secret-file, give the host alone: the ports are derived"}
			case f.secretFile == "" && c.NArg() < 2:
				return &knockcmd.UsageError{}
			}
			o := knockcmd.Options{UDP: f.udp, Verbose: f.verbose, Family: family}
			var err error
			if c.IsSet("delay") {
				if o.Delay, err = knockcmd.ParseDelay(f.delay); err != nil {
					return err
				}
			}
			if c.IsSet("timeout") {
				if o.Timeout, err = knockcmd.ParseTimeout(f.timeout); err != nil {
					return err
				}
			}
			ports := c.Args().Tail()
			if f.secretFile != "" {
				if ports, err = f.derive(c); err != nil {
					return err
				}
				if f.print {
					fmt.Fprintf(stdout, "%s %s\n", c.Args().First(), strings.Join(ports, " "))
					return nil
				}
			}
			return knockcmd.Run(c.Context, o, c.Args().First(), ports, stdout)
		},
	}

	canon, err := cmdline.Normalize(app.Flags, args[1:])
	if err == nil {
		// As with knock 0.8, the last of -4 and -6 wins.
		for _, a := range canon {
			if a == "--" {
				break
			}
			switch a {
			case "--ipv4":
				family = knockcmd.IPv4
			case "--ipv6":
				family = knockcmd.IPv6
			}
		}
		err = app.RunContext(ctx, append([]string{args[0]}, canon...))
	}

	var usageErr *knockcmd.UsageError
	var getoptErr *cmdline.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &getoptErr):
		fmt.Fprintf(stderr, "%s: %s\n", args[0], getoptErr.Msg)
		fmt.Fprint(stdout, usage(app))
	case errors.As(err, &usageErr):
		if usageErr.Msg != "" {
			fmt.Fprintf(stderr, "%s: %s\n", args[0], usageErr.Msg)
		}
		fmt.Fprint(stdout, usage(app))
	case ctx.Err() != nil:
		// Interrupted: main turns this into 128+signal.
	default:
		fmt.Fprintln(stderr, err)
	}
	return 1
}

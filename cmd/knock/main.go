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
	"sync/atomic"
	"syscall"

	"github.com/knock-go/knock/internal/knockcmd"
	"github.com/urfave/cli/v2"
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

// flags are knock's options, in knock 0.8's order: getopt lists
// ambiguous abbreviations in this order.
type flags struct {
	verbose, udp, help, version, ipv4, ipv6 bool
	delay, timeout                          string
}

func (f *flags) list() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Destination: &f.verbose},
		&cli.BoolFlag{Name: "udp", Aliases: []string{"u"}, Destination: &f.udp},
		// Strings, so that knockcmd words the errors.
		&cli.StringFlag{Name: "delay", Aliases: []string{"d"}, Destination: &f.delay},
		&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Destination: &f.help},
		&cli.BoolFlag{Name: "version", Aliases: []string{"V"}, Destination: &f.version},
		&cli.BoolFlag{Name: "ipv4", Aliases: []string{"4"}, Destination: &f.ipv4},
		&cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Destination: &f.ipv6},
		&cli.StringFlag{Name: "timeout", Destination: &f.timeout},
	}
}

// getoptSpec describes the flags for knockcmd.Getopt, which gives them
// knock 0.8's getopt_long syntax before urfave/cli reads them.
func getoptSpec(fl []cli.Flag) []knockcmd.Opt {
	var spec []knockcmd.Opt
	for _, f := range fl {
		var o knockcmd.Opt
		for _, n := range f.Names() {
			if len(n) == 1 {
				o.Short = n[0]
			} else {
				o.Long = n
			}
		}
		if v, ok := f.(cli.DocGenerationFlag); ok {
			o.HasArg = v.TakesValue()
		}
		o.Final = o.Long == "help" || o.Long == "version"
		spec = append(spec, o)
	}
	return spec
}

// run runs knock with args (program name first) and returns the exit
// status, 0 or 1 as knock 0.8 returns.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f flags
	var family knockcmd.Family
	app := &cli.App{
		Name:           "knock",
		Usage:          "send a port-knocking sequence",
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
				fmt.Fprintf(stdout, "knock %s\n", version)
				fmt.Fprintln(stdout, "A Go rewrite of knock by Judd Vinet: https://github.com/knock-go/knock")
				return nil
			case c.NArg() < 2:
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
			return knockcmd.Run(c.Context, o, c.Args().First(), c.Args().Tail(), stdout)
		},
	}

	canon, err := knockcmd.Getopt(getoptSpec(app.Flags), args[1:])
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

	var usage *knockcmd.UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		if usage.Msg != "" {
			fmt.Fprintf(stderr, "%s: %s\n", args[0], usage.Msg)
		}
		fmt.Fprint(stdout, knockcmd.Usage)
	case ctx.Err() != nil:
		// Interrupted: main turns this into 128+signal.
	default:
		fmt.Fprintln(stderr, err)
	}
	return 1
}

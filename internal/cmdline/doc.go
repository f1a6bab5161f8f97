// Package cmdline is the command-line handling that knockd and knock
// share: getopt_long's syntax in front of urfave/cli, and knock 0.8's
// usage and version texts, all derived from the cli.App's flags.
package cmdline

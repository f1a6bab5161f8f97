// Package knockcmd implements the knock client: it sends a sequence of TCP
// and UDP knocks to one host, with the command line of knock 0.8.
package knockcmd

package knockd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/internal/control"
)

// ClientOptions are knockd --status and --revoke's settings.
type ClientOptions struct {
	ConfigPath string // -c: names the instance, whose ControlSocket it may set
	Control    string // --control
	JSON       bool   // --json: print the status as one JSON document
	Revoke     string // --revoke IP; empty for --status
	Door       string // --door: revoke on this door only
	Stdout     io.Writer
}

// Client asks the running daemon for its status, or to revoke, and prints
// the answer. Its error is the message to print before exiting with
// status 1: no daemon answers, or there was nothing to revoke.
func Client(opts ClientOptions) error {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.ConfigPath == "" {
		opts.ConfigPath = "/etc/knockd.conf"
	}
	path := opts.Control
	if path == "" {
		// The configuration may name the socket; one that cannot be
		// read leaves the default, which is right for most.
		cfg, _ := config.Load(opts.ConfigPath)
		var err error
		if path, err = ControlPath("", cfg, opts.ConfigPath); err != nil {
			return err
		}
	}
	req := control.Request{Cmd: control.CmdStatus}
	if opts.Revoke != "" {
		a, err := netip.ParseAddr(opts.Revoke)
		if err != nil {
			return fmt.Errorf("--revoke %q: not an IP address", opts.Revoke)
		}
		req = control.Request{Cmd: control.CmdRevoke, Src: a.String(), Door: opts.Door}
	} else if opts.Door != "" {
		return errors.New("--door goes with --revoke")
	}
	resp, err := control.Ask(path, req)
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	if opts.Revoke != "" {
		for _, o := range resp.Revoked {
			fmt.Fprintf(opts.Stdout, "%s: %s: revoked (%s)\n", o.Src, o.Door, o.Close)
		}
		return nil
	}
	if resp.Status == nil {
		return fmt.Errorf("the answer on %s holds no status", path)
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp.Status)
	}
	WriteStatus(opts.Stdout, resp.Status)
	return nil
}

// stamp prints a time as the status shows it: local, to the second, and
// how far from now.
func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	s := t.Local().Format("2006-01-02 15:04:05")
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return s + " (in " + d.String() + ")"
	case d < 0:
		return s + " (" + (-d).String() + " ago)"
	}
	return s + " (now)"
}

// WriteStatus prints st for people: the doors, the openings, the
// attempts and the counters.
func WriteStatus(w io.Writer, st *control.Status) {
	fmt.Fprintf(w, "knockd pid %d: %s, %s backend, up %s (since %s)\n", st.PID, st.Config, st.Backend,
		st.Now.Sub(st.Started).Round(time.Second), st.Started.Local().Format("2006-01-02 15:04:05"))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nDOOR\tSEQUENCE\tSEQ_TIMEOUT\tCMD_TIMEOUT\tOPENS BY\tSTAGES\tOPENINGS\tTIMEOUTS\n")
	for _, d := range st.Doors {
		seq := d.Sequence
		if d.Kind != "sequence" {
			seq = d.Kind + ": " + seq
		}
		opens := strings.Join(d.Opens, ", ")
		if opens == "" {
			opens = "nothing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d s\t%d s\t%s\t%d\t%d\t%d\n", d.Name, seq, d.SeqTimeout, d.CmdTimeout, opens, d.Stages, d.Openings, d.Timeouts)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nOpenings: %d\n", len(st.Openings))
	if len(st.Openings) > 0 {
		fmt.Fprintf(tw, "DOOR\tSOURCE\tSINCE\tUNTIL\tCLOSED BY\n")
		for _, o := range st.Openings {
			src := o.Src
			if o.Label != "" {
				src = o.Label
			}
			closes := o.Close
			if o.Waiting {
				closes += " (start command waiting)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Door, src, stamp(o.Since, st.Now), stamp(o.Until, st.Now), closes)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nAttempts in progress: %d (MaxAttempts %d)\n", st.Attempts.InProgress, st.Attempts.Max)
	if len(st.Attempts.List) > 0 {
		fmt.Fprintf(tw, "DOOR\tSOURCE\tSTAGE\tSINCE\tTIMES OUT\n")
		for _, a := range st.Attempts.List {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", a.Door, a.Src, a.Stage, stamp(a.Since, st.Now), stamp(a.Until, st.Now))
		}
		tw.Flush()
		if n := st.Attempts.InProgress - len(st.Attempts.List); n > 0 {
			fmt.Fprintf(w, "(and %d more)\n", n)
		}
	}

	c := st.Counters
	fmt.Fprintf(w, "\nCounters:\n")
	for _, r := range []struct {
		name string
		v    any
	}{
		{"packets seen", c.PacketsSeen},
		{"packets dropped", c.PacketsDropped},
		{"packets malformed", c.PacketsMalformed},
		{"packets ignored", c.PacketsIgnored},
		{"stages", c.Stages},
		{"openings", c.Openings},
		{"timeouts", c.Timeouts},
		{"evictions", c.Evictions},
		{"attempts refused", c.RefusedAttempts},
		{"commands started", c.CommandsStarted},
		{"commands failed", c.CommandsFailed},
		{"commands refused", c.CommandsRefused},
		{"commands killed", c.CommandsKilled},
		{"commands dropped", c.CommandsDropped},
		{"commands running", c.CommandsRunning},
		{"commands waiting", c.CommandsWaiting},
		{"set additions dropped", c.SetDropped},
	} {
		fmt.Fprintf(tw, "  %s\t%v\n", r.name, r.v)
	}
	tw.Flush()
}

package cmdline

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Opt is one entry of the getopt_long table that Normalize derives from
// a cli.Flag.
type Opt struct {
	// Name is the flag's name, as urfave/cli knows it.
	Name string
	// Shorts are the one-letter names, Longs the longer ones (the name
	// and the aliases), as getopt_long's optstring and longopts hold them.
	Shorts []byte
	Longs  []string
	// HasArg says the option takes a value (required_argument).
	HasArg bool
	// Final options end parsing where they stand: knockd and knock 0.8
	// print their help or version and exit as soon as getopt returns
	// -h or -V, whatever follows. The flags named "help" and "version"
	// are final.
	Final bool
	// Added marks an option knockd 0.8 or knock 0.8 does not have (its
	// cli.Flag's Category is AddedCategory). A prefix that is ambiguous
	// only because of added options means the 0.8 option, as it did in
	// 0.8: "--c" stays "--config" beside "--check"; and one ambiguous
	// among 0.8's options lists those only, as 0.8 did.
	Added bool
}

// AddedCategory is the cli.Flag Category of the options this rewrite
// adds to 0.8's.
const AddedCategory = "added"

// Table returns the getopt_long table of flags, in their order (the
// order in which an ambiguous prefix lists its possibilities).
func Table(flags []cli.Flag) []Opt {
	var tab []Opt
	for _, f := range flags {
		names := f.Names()
		if len(names) == 0 {
			continue
		}
		o := Opt{Name: names[0]}
		for _, n := range names {
			switch {
			case n == "":
			case len(n) == 1:
				o.Shorts = append(o.Shorts, n[0])
			default:
				o.Longs = append(o.Longs, n)
			}
		}
		if v, ok := f.(cli.DocGenerationFlag); ok {
			o.HasArg = v.TakesValue()
		}
		o.Final = o.Name == "help" || o.Name == "version"
		if c, ok := f.(cli.CategorizableFlag); ok {
			o.Added = c.GetCategory() == AddedCategory
		}
		tab = append(tab, o)
	}
	return tab
}

// Error is a command line that getopt_long rejects. Msg is getopt's
// complaint without the program name ("invalid option -- 'x'").
type Error struct {
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Normalize reads args (without the program name) as GNU getopt_long
// reads them with the table of flags, and returns them in the one form
// urfave/cli reads the same way: each option as "--name" or
// "--name=value", in the order given, then "--", then the operands.
//
// As with getopt_long: options and operands may be mixed ("host 7000
// -v"; with $POSIXLY_CORRECT set, the first operand ends the options),
// short options may be bundled ("-dv", "-dvc/x", "-dvc /x"), a value may
// be attached or be the next argument ("-ieth1", "--config=/x",
// "--config /x"), a long option may be shortened to any unambiguous
// prefix ("--verb"), and "--" ends the options. When a final option is
// met, the result is that option alone. Errors are *Error, worded as
// glibc's getopt_long words them.
func Normalize(flags []cli.Flag, args []string) ([]string, error) {
	tab := Table(flags)
	posix := os.Getenv("POSIXLY_CORRECT") != ""
	var out, operands []string
	// emit adds an option and says whether parsing ends there.
	emit := func(o Opt, val string, hasVal bool) bool {
		s := "--" + o.Name
		if hasVal {
			s += "=" + val
		}
		if o.Final {
			out = []string{s}
			return true
		}
		out = append(out, s)
		return false
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			operands = append(operands, args[i+1:]...)
			i = len(args)
		case len(a) < 2 || a[0] != '-':
			if posix {
				operands = append(operands, args[i:]...)
				i = len(args)
				break
			}
			operands = append(operands, a)
		case a[1] == '-':
			name, val, hasVal := strings.Cut(a[2:], "=")
			o, long, err := findLong(tab, a, name)
			if err != nil {
				return nil, err
			}
			switch {
			case o.HasArg && !hasVal:
				if i+1 == len(args) {
					return nil, &Error{fmt.Sprintf("option '--%s' requires an argument", long)}
				}
				i++
				val, hasVal = args[i], true
			case !o.HasArg && hasVal:
				return nil, &Error{fmt.Sprintf("option '--%s' doesn't allow an argument", long)}
			}
			if emit(o, val, hasVal) {
				return out, nil
			}
		default:
			for j := 1; j < len(a); j++ {
				o, ok := findShort(tab, a[j])
				if !ok {
					return nil, &Error{fmt.Sprintf("invalid option -- '%c'", a[j])}
				}
				if !o.HasArg {
					if emit(o, "", false) {
						return out, nil
					}
					continue
				}
				// The rest of the word is the value, else the next word.
				val := a[j+1:]
				if val == "" {
					if i+1 == len(args) {
						return nil, &Error{fmt.Sprintf("option requires an argument -- '%c'", a[j])}
					}
					i++
					val = args[i]
				}
				if emit(o, val, true) {
					return out, nil
				}
				break
			}
		}
	}
	out = append(out, "--")
	return append(out, operands...), nil
}

func findShort(tab []Opt, c byte) (Opt, bool) {
	for _, o := range tab {
		for _, s := range o.Shorts {
			if s == c {
				return o, true
			}
		}
	}
	return Opt{}, false
}

// findLong finds the option that name (arg without its dashes and value)
// names: an exact long name, else the only option one of whose long
// names it is a prefix of. It returns the long name matched too, for
// the messages.
func findLong(tab []Opt, arg, name string) (Opt, string, error) {
	type match struct {
		o    Opt
		long string
	}
	var matches []match
	for _, o := range tab {
		first := true
		for _, l := range o.Longs {
			if l == name {
				return o, l, nil
			}
			// Two aliases of one flag are one possibility, as getopt
			// counts entries that do the same thing as one.
			if first && strings.HasPrefix(l, name) {
				matches = append(matches, match{o, l})
				first = false
			}
		}
	}
	switch len(matches) {
	case 0:
		return Opt{}, "", &Error{fmt.Sprintf("unrecognized option '%s'", arg)}
	case 1:
		return matches[0].o, matches[0].long, nil
	}
	// A prefix 0.8 read as one of its own options keeps that meaning.
	var old []match
	for _, m := range matches {
		if !m.o.Added {
			old = append(old, m)
		}
	}
	if len(old) == 1 {
		return old[0].o, old[0].long, nil
	}
	// A prefix ambiguous in 0.8 gets 0.8's message, whatever was added
	// since ("--d": '--daemon' '--debug', not '--door').
	if len(old) > 1 {
		matches = old
	}
	var b strings.Builder
	fmt.Fprintf(&b, "option '%s' is ambiguous; possibilities:", arg)
	for _, m := range matches {
		fmt.Fprintf(&b, " '--%s'", m.long)
	}
	return Opt{}, "", &Error{b.String()}
}

package knockcmd

import (
	"fmt"
	"strings"
)

// Opt describes one command-line option for Getopt.
type Opt struct {
	// Short is the one-letter name, 0 if none.
	Short byte
	// Long is the long name without dashes, "" if none.
	Long string
	// HasArg says the option takes a value.
	HasArg bool
	// Final options end parsing where they stand: knock 0.8 prints its
	// help or version and exits as soon as getopt returns -h or -V,
	// whatever follows.
	Final bool
}

func (o Opt) canonical() string {
	if o.Long != "" {
		return "--" + o.Long
	}
	return "-" + string(o.Short)
}

// Getopt reads args (without the program name) as GNU getopt_long does
// for knock 0.8, and returns them in a form that Go's flag package reads
// the same way: each option as "--long" or "--long=value", in the order
// given, then "--", then the operands.
//
// As with getopt_long, options and operands may be mixed ("host 7000
// -v"), short options may be grouped ("-uv", "-vd50"), a value may be
// attached or be the next argument, a long option may be abbreviated to
// any unambiguous prefix ("--verb"), and "--" ends the options. When a
// Final option is met, the result is that option alone. Errors are
// *UsageError with getopt's message.
func Getopt(opts []Opt, args []string) ([]string, error) {
	var out, operands []string
	emit := func(o Opt, val string, hasVal bool) bool {
		s := o.canonical()
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
			operands = append(operands, a)
		case a[1] == '-':
			o, err := findLong(opts, a)
			if err != nil {
				return nil, err
			}
			_, val, hasVal := strings.Cut(a[2:], "=")
			switch {
			case o.HasArg && !hasVal:
				if i+1 == len(args) {
					return nil, &UsageError{Msg: fmt.Sprintf("option '--%s' requires an argument", o.Long)}
				}
				i++
				val, hasVal = args[i], true
			case !o.HasArg && hasVal:
				return nil, &UsageError{Msg: fmt.Sprintf("option '--%s' doesn't allow an argument", o.Long)}
			}
			if emit(o, val, hasVal) {
				return out, nil
			}
		default:
			for j := 1; j < len(a); j++ {
				o, ok := findShort(opts, a[j])
				if !ok {
					return nil, &UsageError{Msg: fmt.Sprintf("invalid option -- '%c'", a[j])}
				}
				if !o.HasArg {
					if emit(o, "", false) {
						return out, nil
					}
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 == len(args) {
						return nil, &UsageError{Msg: fmt.Sprintf("option requires an argument -- '%c'", a[j])}
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

func findShort(opts []Opt, c byte) (Opt, bool) {
	for _, o := range opts {
		if o.Short != 0 && o.Short == c {
			return o, true
		}
	}
	return Opt{}, false
}

// findLong finds the option named by arg ("--name" or "--name=value"): an
// exact name, else the only option the name is a prefix of.
func findLong(opts []Opt, arg string) (Opt, error) {
	name, _, _ := strings.Cut(arg[2:], "=")
	var matches []Opt
	for _, o := range opts {
		if o.Long == "" || !strings.HasPrefix(o.Long, name) {
			continue
		}
		if o.Long == name {
			return o, nil
		}
		matches = append(matches, o)
	}
	switch len(matches) {
	case 0:
		return Opt{}, &UsageError{Msg: fmt.Sprintf("unrecognized option '%s'", arg)}
	case 1:
		return matches[0], nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "option '%s' is ambiguous; possibilities:", arg)
	for _, o := range matches {
		fmt.Fprintf(&b, " '--%s'", o.Long)
	}
	return Opt{}, &UsageError{Msg: b.String()}
}

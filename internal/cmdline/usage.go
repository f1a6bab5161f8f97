package cmdline

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// WriteUsage writes app's usage in the layout of knockd 0.8's and knock
// 0.8's: "usage: " and app.UsageText, "options:", one line per visible
// flag with its description starting at column, and a blank line.
//
// A flag's line shows its first one-letter name, its name and, if the
// flag takes a value and its Usage names one between backquotes (as
// urfave/cli's help does: "use an alternate config `file`"), that name
// between angle brackets, or as written when it has them already. A
// Usage of several lines is indented to column.
func WriteUsage(w io.Writer, app *cli.App, column int) {
	fmt.Fprintf(w, "usage: %s\noptions:\n", app.UsageText)
	for _, f := range app.Flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		fmt.Fprintln(w, usageLine(f, column))
	}
	fmt.Fprintln(w)
}

func usageLine(f cli.Flag, column int) string {
	var short, long string
	for _, n := range f.Names() {
		switch {
		case len(n) == 1 && short == "":
			short = n
		case len(n) > 1 && long == "":
			long = n
		}
	}
	var b strings.Builder
	switch {
	case short != "" && long != "":
		fmt.Fprintf(&b, "  -%s, --%s", short, long)
	case short != "":
		fmt.Fprintf(&b, "  -%s", short)
	default:
		fmt.Fprintf(&b, "      --%s", long)
	}
	var text string
	if v, ok := f.(cli.DocGenerationFlag); ok {
		placeholder, usage := UnquoteUsage(v.GetUsage())
		if placeholder != "" && v.TakesValue() {
			if !strings.HasPrefix(placeholder, "<") {
				placeholder = "<" + placeholder + ">"
			}
			fmt.Fprintf(&b, " %s", placeholder)
		}
		text = usage
	}
	if text == "" {
		return b.String()
	}
	pad := column - b.Len()
	if pad < 2 {
		pad = 2
	}
	b.WriteString(strings.Repeat(" ", pad))
	b.WriteString(strings.ReplaceAll(text, "\n", "\n"+strings.Repeat(" ", column)))
	return b.String()
}

// UnquoteUsage splits a flag's Usage as urfave/cli reads it: the first
// word between backquotes names the value, and the text keeps the word
// without its backquotes.
func UnquoteUsage(usage string) (name, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name = usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+1+j+1:]
}

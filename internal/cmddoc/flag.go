package cmddoc

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/knock-go/knock/internal/cmdline"
)

// option is what the page and the completion need of one flag.
type option struct {
	name        string // the long name, without dashes
	short       string // the one-letter name, or ""
	placeholder string // the value's name (from the Usage's backquotes), or "" for a flag that takes none
	usage       string // the Usage without backquotes
	def         string // the default value, or ""
	added       bool   // an option knockd 0.8 / knock 0.8 lack
}

// options returns app's visible flags in their order.
func options(app *cli.App) []option {
	var opts []option
	for _, f := range app.Flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		var o option
		for _, n := range f.Names() {
			switch {
			case len(n) == 1 && o.short == "":
				o.short = n
			case len(n) > 1 && o.name == "":
				o.name = n
			}
		}
		if d, ok := f.(cli.DocGenerationFlag); ok {
			o.placeholder, o.usage = cmdline.UnquoteUsage(d.GetUsage())
			if d.TakesValue() {
				if o.placeholder == "" {
					o.placeholder = "value"
				}
				if bare := strings.Trim(o.placeholder, "<>"); bare != o.placeholder {
					o.usage = strings.ReplaceAll(o.usage, o.placeholder, bare)
					o.placeholder = bare
				}
				o.def = d.GetValue()
			} else {
				o.placeholder = ""
			}
		}
		if c, ok := f.(cli.CategorizableFlag); ok {
			o.added = c.GetCategory() == cmdline.AddedCategory
		}
		opts = append(opts, o)
	}
	return opts
}

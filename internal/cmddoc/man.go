package cmddoc

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// A Page is the manual page, in section 1, of one command. Its OPTIONS
// section is written from App's flags; the rest is markdown given here.
type Page struct {
	// App is the command: its Name and Usage make the NAME line, its
	// visible flags the OPTIONS section.
	App *cli.App
	// Synopsis is the SYNOPSIS section, in markdown.
	Synopsis string
	// Description is the DESCRIPTION section, in markdown.
	Description string
	// Options holds, by long flag name, markdown that follows a flag's
	// Usage in OPTIONS. An entry that names no flag is an error, so that
	// a removed flag cannot stay documented. A flag without an entry
	// has its Usage only.
	Options map[string]string
	// Placeholders holds, by long flag name, the name of a flag's
	// value where its Usage names none (knockd 0.8's help names no
	// value for -p and -g).
	Placeholders map[string]string
	// AddedNote follows the Usage of the flags knockd 0.8 lacks (their
	// Category is cmdline.AddedCategory); empty for none.
	AddedNote string
	// Sections follow OPTIONS, in order.
	Sections []Section
	// Source is the footer's source field, such as "knock".
	Source string
}

// A Section is one section of a manual page: a title in capitals and
// its markdown.
type Section struct {
	Title, Body string
}

// Markdown returns the page in go-md2man's markdown.
func (p Page) Markdown() (string, error) {
	opts := options(p.App)
	known := map[string]bool{}
	for i, o := range opts {
		known[o.name] = true
		if ph, ok := p.Placeholders[o.name]; ok && o.placeholder != "" {
			opts[i].placeholder = ph
		}
	}
	var unknown []string
	for _, m := range []map[string]string{p.Options, p.Placeholders} {
		for name := range m {
			if !known[name] {
				unknown = append(unknown, name)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return "", fmt.Errorf("cmddoc: %s page documents flags it does not have: %s", p.App.Name, strings.Join(unknown, ", "))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%% %s 1 \"\" %q \"User Commands\"\n\n", p.App.Name, p.Source)
	fmt.Fprintf(&b, "# NAME\n\n%s - %s\n\n", p.App.Name, p.App.Usage)
	fmt.Fprintf(&b, "# SYNOPSIS\n\n%s\n\n", strings.TrimSpace(p.Synopsis))
	fmt.Fprintf(&b, "# DESCRIPTION\n\n%s\n\n", strings.TrimSpace(p.Description))
	b.WriteString("# OPTIONS\n\n")
	for _, o := range opts {
		b.WriteString(term(o))
		b.WriteString("\n: ")
		text := escape(o.usage)
		text = strings.ReplaceAll(text, "\n", " ")
		if !strings.HasSuffix(text, ".") {
			text += "."
		}
		if o.def != "" && !strings.Contains(o.usage, "default") {
			text += fmt.Sprintf(" The default is **%s**.", escape(o.def))
		}
		if extra := strings.TrimSpace(p.Options[o.name]); extra != "" {
			text += " " + strings.ReplaceAll(extra, "\n", " ")
		}
		if o.added && p.AddedNote != "" {
			text += " " + p.AddedNote
		}
		b.WriteString(upperFirst(text))
		b.WriteString("\n\n")
	}
	for _, s := range p.Sections {
		fmt.Fprintf(&b, "# %s\n\n%s\n\n", s.Title, strings.Trim(s.Body, "\n"))
	}
	return b.String(), nil
}

// Man returns the page in roff, as man(1) reads it.
func (p Page) Man() ([]byte, error) {
	md, err := p.Markdown()
	if err != nil {
		return nil, err
	}
	return md2man.Render([]byte(md)), nil
}

// term is an option's entry in OPTIONS: "**-c**, **--config**=*file*".
func term(o option) string {
	var names []string
	if o.short != "" {
		names = append(names, "**-"+o.short+"**")
	}
	if o.name != "" {
		names = append(names, "**--"+o.name+"**")
	}
	s := strings.Join(names, ", ")
	if o.placeholder != "" {
		s += " *" + escape(o.placeholder) + "*"
	}
	return s
}

// escape keeps markdown from reading a flag's plain text as markup.
func escape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`, "`", "\\`", `<`, `\<`, `[`, `\[`)
	return r.Replace(s)
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

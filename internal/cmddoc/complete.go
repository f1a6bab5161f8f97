package cmddoc

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Values says what a flag's value, or an operand, completes to.
type Values struct {
	kind  string // "", "files", "dirs", "interfaces", "hosts", "words"
	words []string
}

var (
	// Anything is a value that has no list to complete from, such as
	// a number.
	Anything = Values{kind: "anything"}
	// Files are file names.
	Files = Values{kind: "files"}
	// Dirs are directory names.
	Dirs = Values{kind: "dirs"}
	// Interfaces are the network interfaces of this host, and "any".
	Interfaces = Values{kind: "interfaces"}
	// Hosts are host names that bash knows of (/etc/hosts, $HOSTFILE).
	Hosts = Values{kind: "hosts"}
)

// Words are the given words.
func Words(w ...string) Values { return Values{kind: "words", words: w} }

// A Completion is the shell completion of one command.
type Completion struct {
	// App is the command: its Name and visible flags.
	App *cli.App
	// Values holds, by long flag name, what the value of each flag that
	// takes one completes to. A flag that takes a value and has no
	// entry, or an entry for a flag that takes none, is an error, so
	// that a new flag cannot be left out.
	Values map[string]Values
	// FirstOperand is what the first word that is not an option
	// completes to; the zero Values for nothing.
	FirstOperand Values
}

func (c Completion) check(opts []option) error {
	var errs []string
	takes := map[string]bool{}
	for _, o := range opts {
		takes[o.name] = o.placeholder != ""
		if _, ok := c.Values[o.name]; o.placeholder != "" && !ok {
			errs = append(errs, fmt.Sprintf("--%s takes a value but Values has no entry for it", o.name))
		}
	}
	for name := range c.Values {
		if !takes[name] {
			errs = append(errs, fmt.Sprintf("Values has an entry for %q, which is not a flag that takes a value", name))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("cmddoc: %s completion: %s", c.App.Name, strings.Join(errs, "; "))
	}
	return nil
}

// Bash returns a bash completion script for the command, for
// /usr/share/bash-completion/completions/NAME. It needs bash only, not
// the bash-completion package's helpers.
func (c Completion) Bash() (string, error) {
	opts := options(c.App)
	if err := c.check(opts); err != nil {
		return "", err
	}
	name := c.App.Name
	fn := "_" + strings.NewReplacer("-", "_", ".", "_").Replace(name)

	var all, valued []string
	byKind := map[string][]string{}
	var kinds []string
	wordsOf := map[string][]string{}
	for _, o := range opts {
		var names []string
		if o.short != "" {
			names = append(names, "-"+o.short)
		}
		names = append(names, "--"+o.name)
		all = append(all, names...)
		if o.placeholder == "" {
			continue
		}
		valued = append(valued, names...)
		v := c.Values[o.name]
		key := v.kind
		if v.kind == "words" {
			key = "words " + strings.Join(v.words, " ")
			wordsOf[key] = v.words
		}
		if _, ok := byKind[key]; !ok {
			kinds = append(kinds, key)
		}
		byKind[key] = append(byKind[key], names...)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s(1)                                -*- shell-script -*-\n", name)
	b.WriteString("# Generated from the command's flags by internal/cmddoc; do not edit.\n\n")
	fmt.Fprintf(&b, "%s()\n{\n", fn)
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev= i\n")
	b.WriteString("\tCOMPREPLY=()\n")
	b.WriteString("\t# bash breaks --flag=value at the \"=\".\n")
	b.WriteString("\tif [[ $cur == = ]]; then\n\t\tcur=\n\t\tprev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("\telif ((COMP_CWORD >= 2)) && [[ ${COMP_WORDS[COMP_CWORD-1]} == = ]]; then\n\t\tprev=${COMP_WORDS[COMP_CWORD-2]}\n")
	b.WriteString("\telif ((COMP_CWORD >= 1)); then\n\t\tprev=${COMP_WORDS[COMP_CWORD-1]}\n\tfi\n")
	if len(kinds) > 0 {
		b.WriteString("\tcase $prev in\n")
		for _, k := range kinds {
			fmt.Fprintf(&b, "\t%s)\n", strings.Join(byKind[k], "|"))
			switch {
			case k == "files":
				b.WriteString("\t\tcompopt -o filenames 2>/dev/null\n\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n")
			case k == "dirs":
				b.WriteString("\t\tcompopt -o filenames 2>/dev/null\n\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n")
			case k == "interfaces":
				b.WriteString("\t\tCOMPREPLY=($(compgen -W \"any $(command ls /sys/class/net 2>/dev/null)\" -- \"$cur\"))\n")
			case k == "hosts":
				b.WriteString("\t\tCOMPREPLY=($(compgen -A hostname -- \"$cur\"))\n")
			case strings.HasPrefix(k, "words "):
				fmt.Fprintf(&b, "\t\tCOMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n", strings.Join(wordsOf[k], " "))
			}
			b.WriteString("\t\treturn\n\t\t;;\n")
		}
		b.WriteString("\tesac\n")
	}
	b.WriteString("\tif [[ $cur == -* ]]; then\n")
	fmt.Fprintf(&b, "\t\tCOMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n", strings.Join(all, " "))
	b.WriteString("\t\treturn\n\tfi\n")
	if c.FirstOperand.kind != "" && c.FirstOperand.kind != "anything" {
		b.WriteString("\t# Count the operands before this word.\n")
		b.WriteString("\tlocal n=0 skip=\n")
		b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n")
		b.WriteString("\t\tif [[ -n $skip ]]; then\n\t\t\tskip=\n\t\t\tcontinue\n\t\tfi\n")
		b.WriteString("\t\tcase ${COMP_WORDS[i]} in\n")
		if len(valued) > 0 {
			fmt.Fprintf(&b, "\t\t%s) [[ ${COMP_WORDS[i+1]} == = ]] && ((i++)); skip=1 ;;\n", strings.Join(valued, "|"))
		}
		b.WriteString("\t\t-*) ;;\n\t\t*) ((n++)) ;;\n\t\tesac\n\tdone\n")
		b.WriteString("\tif ((n == 0)); then\n")
		switch c.FirstOperand.kind {
		case "files":
			b.WriteString("\t\tcompopt -o filenames 2>/dev/null\n\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n")
		case "dirs":
			b.WriteString("\t\tcompopt -o filenames 2>/dev/null\n\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n")
		case "interfaces":
			b.WriteString("\t\tCOMPREPLY=($(compgen -W \"$(command ls /sys/class/net 2>/dev/null)\" -- \"$cur\"))\n")
		case "hosts":
			b.WriteString("\t\tCOMPREPLY=($(compgen -A hostname -- \"$cur\"))\n")
		case "words":
			fmt.Fprintf(&b, "\t\tCOMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n", strings.Join(c.FirstOperand.words, " "))
		}
		b.WriteString("\tfi\n")
	}
	fmt.Fprintf(&b, "} && complete -F %s %s\n", fn, name)
	return b.String(), nil
}

// Zsh returns a zsh completion function for the command, for
// /usr/share/zsh/vendor-completions/_NAME.
func (c Completion) Zsh() (string, error) {
	opts := options(c.App)
	if err := c.check(opts); err != nil {
		return "", err
	}
	// In single quotes; brackets close a description, colons end a
	// message.
	esc := strings.NewReplacer(`'`, `'\''`, `[`, `\[`, `]`, `\]`)
	escMsg := strings.NewReplacer(`'`, `'\''`, `:`, `\:`)
	action := func(v Values, what string) string {
		switch v.kind {
		case "files":
			return ":" + what + ":_files"
		case "dirs":
			return ":" + what + ":_files -/"
		case "interfaces":
			return ":" + what + ":_net_interfaces"
		case "hosts":
			return ":" + what + ":_hosts"
		case "words":
			return ":" + what + ":(" + strings.Join(v.words, " ") + ")"
		}
		return ":" + what + ": "
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n", c.App.Name)
	fmt.Fprintf(&b, "# zsh completion for %s(1); generated from the command's flags by internal/cmddoc; do not edit.\n\n", c.App.Name)
	b.WriteString("_arguments -s -S \\\n")
	for _, o := range opts {
		desc := esc.Replace(strings.SplitN(o.usage, "\n", 2)[0])
		var act string
		if o.placeholder != "" {
			act = action(c.Values[o.name], escMsg.Replace(o.placeholder))
		}
		switch {
		case o.short != "" && o.placeholder != "":
			fmt.Fprintf(&b, "\t'(-%[1]s --%[2]s)'{-%[1]s+,--%[2]s=}'[%[3]s]%[4]s' \\\n", o.short, o.name, desc, act)
		case o.short != "":
			fmt.Fprintf(&b, "\t'(-%[1]s --%[2]s)'{-%[1]s,--%[2]s}'[%[3]s]' \\\n", o.short, o.name, desc)
		case o.placeholder != "":
			fmt.Fprintf(&b, "\t'--%s=[%s]%s' \\\n", o.name, desc, act)
		default:
			fmt.Fprintf(&b, "\t'--%s[%s]' \\\n", o.name, desc)
		}
	}
	if c.FirstOperand.kind != "" {
		fmt.Fprintf(&b, "\t'1%s' \\\n", action(c.FirstOperand, "host"))
		b.WriteString("\t'*:port[\\:proto]: ' \\\n")
	}
	b.WriteString("\t&& return 0\n")
	return b.String(), nil
}

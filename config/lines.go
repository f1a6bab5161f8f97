package config

// gopkg.in/ini.v1 parses knockd.conf: it reads the sections, the keys
// and their values, and the builder in parse.go takes every value from
// it. This file is the small layer in front of ini.v1, and does only
// what ini.v1 cannot:
//
// Line numbers. ini.v1 keeps none, so readLines records the line of every
// section header and every key in file order, for FILE:LINE messages and
// for the order in which the builder applies keys (a later Sequence wins,
// an alias included).
//
// knockd's quirks, settled before ini.v1 reads the text, so that what it
// returns is used as it is. knockd 0.8 reads a value as the whole rest of
// the line after the first "=", trimmed, "#", ";", "=" and quotes kept;
// ini.v1 (with iniOptions) does the same except where noted here:
//
//   - A line the parser does not take stops the reading with its
//     FILE:LINE error, and ini.v1 is given only the lines above it: a
//     directive before any section, a bad section header, a door defined
//     twice, no key before "=", an unknown key name (among them quoted
//     names and "-", which ini.v1 would unquote or renumber as "#1"), a
//     key in the wrong section, UseSyslog with a value, and any other key
//     without one (ini.v1 would drop an empty value from
//     ValueWithShadows, and fail on a bare word given a value later).
//   - A header with spaces inside its brackets is handed over as [name]:
//     knockd's names are trimmed, ini.v1 keeps the spaces.
//   - A value that begins with a backquote or """ is handed over in
//     ini.v1's own """...""" form. ini.v1 takes such a value for a quoted
//     string and would keep only what is inside the quotes (losing the
//     command of "`which iptables` -A ...") or let an unclosed one run on
//     over the following lines; inside """ it keeps everything up to the
//     last """ of the line, which is the one added here.
//   - A bare word repeated in its section (UseSyslog twice) is dropped:
//     ini.v1 fails on a second boolean key of one name.
//
// Every other line is handed over as it is, and each at its own line
// number, so that ini.v1 reads the file's own text. FuzzParse checks on
// random input that ini.v1's value for each key is knockd's reading.

import (
	"bytes"
	"fmt"
	"strings"
)

// section is one [name] block of the file.
type section struct {
	name    string // as ini.v1 read it once readINI has run
	line    int
	options bool            // [options], in any case
	entries []entry         // its keys in file order
	partial bool            // reading stopped inside it, at an error
	words   map[string]bool // its bare words so far
}

// entry is one key line.
type entry struct {
	line  int
	key   string // lower case, as ini.v1 names it; always in keyDefs
	bare  bool   // a word alone on its line, with no "=" (UseSyslog)
	value string // as ini.v1 read it (readINI)
}

// readLines checks data line by line as described above and returns its
// sections and keys with their lines, and the text for ini.v1 to read. It
// stops at the first line it does not take, returning what it read above
// that line and an error about it.
func readLines(path string, data []byte) ([]*section, []byte, *Error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM, as editors write it
	var (
		secs  []*section
		cur   *section
		doors = map[string]int{} // door name -> header line
		src   = make([]byte, 0, len(data)+64)
	)
	fail := func(line int, sec, key, msg string) ([]*section, []byte, *Error) {
		if cur != nil {
			cur.partial = true
		}
		return secs, src, &Error{File: path, Line: line, Section: sec, Key: key, Msg: msg}
	}
	for i, l := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		t := strings.TrimSpace(string(l))
		switch {
		case t == "", t[0] == '#', t[0] == ';':
		case t[0] == '[':
			end := strings.LastIndexByte(t, ']')
			if end < 0 {
				return fail(n, "", "", `section header has no closing "]": write [name]`)
			}
			if end != len(t)-1 {
				return fail(n, "", "", `unexpected text after "]": a section header is [name] alone on its line`)
			}
			name := strings.TrimSpace(t[1:end])
			// knockd 0.8 takes the text between the first and the last
			// byte as the name.
			as08 := fmt.Sprintf("; knockd 0.8 would have named the door %q", t[1:end])
			if name == "" {
				if t[1:end] == "" {
					as08 = ""
				}
				return fail(n, "", "", "empty section name: write [options], or a door name such as [openSSH]"+as08)
			}
			if strings.ContainsAny(name, "[]") {
				return fail(n, "", "", fmt.Sprintf("section name %q may not contain [ or ]", name)+as08)
			}
			s := &section{name: name, line: n, options: strings.EqualFold(name, "options")}
			if !s.options {
				if prev, ok := doors[name]; ok {
					return fail(n, name, "", fmt.Sprintf("door %q is already defined at line %d: give each door a name of its own; knockd 0.8 would have run both doors, under the one name", name, prev))
				}
				doors[name] = n
			}
			secs = append(secs, s)
			cur = s
			if name != t[1:end] {
				src = append(append(append(src, '['), name...), "]\n"...)
				continue
			}
		default:
			if cur == nil {
				return fail(n, "", "", "all directives must belong to a section: put [options], or a door header such as [openSSH], above this line")
			}
			k, v, hasValue := strings.Cut(t, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if hasValue && k == "" {
				return fail(n, cur.name, "", `no key before "=": write key = value`)
			}
			e := entry{line: n, key: strings.ToLower(k), bare: !hasValue}
			if msg, key := checkKey(cur, k, e.key, e.bare, v); msg != "" {
				return fail(n, cur.name, key, msg)
			}
			switch {
			case e.bare && cur.words[e.key]:
				src = append(src, '\n')
				continue
			case e.bare:
				if cur.words == nil {
					cur.words = map[string]bool{}
				}
				cur.words[e.key] = true
			case strings.HasPrefix(v, "`"), strings.HasPrefix(v, `"""`):
				cur.entries = append(cur.entries, e)
				eq := bytes.IndexByte(l, '=')
				src = append(append(append(append(src, l[:eq+1]...), `"""`...), v...), "\"\"\"\n"...)
				continue
			}
			cur.entries = append(cur.entries, e)
		}
		src = append(append(src, l...), '\n')
	}
	return secs, src, nil
}

// checkKey returns what is wrong with key (as written, and in lower case)
// on a line of section s, and the key's name for the message, or "" when
// the builder can take the line: a known key, in the right section, with
// a value (UseSyslog without one).
func checkKey(s *section, key, lk string, bare bool, value string) (msg, name string) {
	def, ok := keyDefs[lk]
	if !ok {
		if bare {
			// "Sequence 7000,8000": a known key, then a value, but no "=".
			if f := strings.Fields(key); len(f) > 1 {
				if d, ok := keyDefs[strings.ToLower(f[0])]; ok && d.example != "" {
					return fmt.Sprintf(`missing "=" between the key and its value: write %s = %s`, d.name, strings.TrimSpace(key[len(f[0]):])), d.name
				}
			}
		}
		return fmt.Sprintf("unknown key %q%s", key, suggest(lk, s.options)), ""
	}
	switch {
	case def.kind == doorKey && s.options:
		as08 := ""
		if s.name != "options" {
			// knockd 0.8 knows [options] in lower case only.
			as08 = fmt.Sprintf("; knockd 0.8 would have read [%s] as a door of that name", s.name)
		}
		return "this key belongs in a door section (such as [openSSH]), not in [options]" + as08, def.name
	case def.kind == optionKey && !s.options:
		as08 := ""
		if def.id == "usesyslog" && bare {
			as08 = "; knockd 0.8 would have turned syslog on all the same"
		}
		return "this key belongs in the [options] section, not in a door section" + as08, def.name
	case def.id == "usesyslog":
		if !bare {
			return "takes no value: write UseSyslog alone on its line", def.name
		}
	case bare || value == "":
		var err error = fmt.Errorf("no value: write %s = %s", def.name, def.example)
		if !bare {
			err = with08(err, emptyValue08(def.id))
		}
		return err.Error(), def.name
	}
	return "", ""
}

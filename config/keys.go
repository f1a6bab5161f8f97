package config

import "sort"

// A Key is a knockd.conf directive, as its documentation names it.
type Key struct {
	// Name is the key's spelling, such as "Seq_Timeout".
	Name string
	// AliasOf is the Name of the key this one is another name for, or
	// "" for a key of its own.
	AliasOf string
	// Door is true for a door key, false for an [options] key.
	Door bool
}

// Keys returns every directive the parser knows, sorted by Name, so that
// the manual page can be checked against it.
func Keys() []Key {
	var keys []Key
	for lower, def := range keyDefs {
		k := Key{Name: def.name, Door: def.kind == doorKey}
		if def.id != lower {
			k.AliasOf = keyDefs[def.id].name
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys
}

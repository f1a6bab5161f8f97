// Package cmddoc writes a command's manual page and shell completion
// from its urfave/cli flags, so that neither can miss a flag.
package cmddoc

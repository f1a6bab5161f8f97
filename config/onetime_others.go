//go:build !unix

package config

// oNonblock is 0 where there is no O_NONBLOCK (nor FIFOs that block an
// open).
const oNonblock = 0

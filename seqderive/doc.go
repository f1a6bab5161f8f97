// Package seqderive derives a door's knock sequence from a shared secret
// and the time, as a time-based one-time password is derived (RFC 6238),
// so that the daemon and the knock client compute the same ports. It
// imports nothing of this module but wire, so that the client does not
// link the configuration parser.
//
// Its API serves this module's commands and is not yet stable.
package seqderive

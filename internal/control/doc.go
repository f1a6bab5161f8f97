// Package control is knockd's control socket: a unix socket on which the
// daemon answers knockd --status and --revoke, one JSON request and one
// JSON response per connection, to its own user and root only.
//
// Its API serves this module's commands and is not yet stable.
package control

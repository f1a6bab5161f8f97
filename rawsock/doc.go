// Package rawsock is a capture backend that reads candidate knocks from
// Linux AF_PACKET sockets filtered by a classic BPF program.
//
// Its API serves this module's commands and is not yet stable.
package rawsock

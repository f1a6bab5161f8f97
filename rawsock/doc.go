// Package rawsock is a capture backend that reads candidate knocks from
// Linux AF_PACKET sockets filtered by a classic BPF program.
package rawsock

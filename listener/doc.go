// Package listener is the unprivileged capture backend: it binds a TCP
// listener or UDP socket on every knock port and reports each accepted
// connection or received datagram as a knock.
//
// Trade-offs compared with the raw backend:
//
//   - The knock ports look open to a port scanner.
//   - TCP flags cannot be seen: every accepted connection is reported as a
//     plain SYN, so a door whose TCPFlags rejects a plain SYN can never
//     open here (see Unsupported).
//   - A TCP knock counts only once the handshake completes. knock 0.8
//     closes its connect at once, which over any real network distance
//     is before the SYN-ACK returns, so such knocks are never accepted.
//     A client that completes the handshake (nc -z, telnet, a browser)
//     works.
//   - Ports below 1024 need CAP_NET_BIND_SERVICE.
//   - Only addresses of this host can be watched: a door Target that is
//     not a local address (a router forwarding knocks) needs the raw
//     backend.
//
// Knocks read from different sockets are put back in the order they
// arrived before they are reported (UDP by the kernel's receive
// timestamps, TCP by accepting from one epoll loop), at the cost of a
// short hold (Options.Hold). This is exact on Linux only; elsewhere
// quick knocks on different ports may be reported out of order.
//
// Its API serves this module's commands and is not yet stable.
package listener

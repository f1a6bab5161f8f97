// Package netlab builds small networks of Linux network namespaces for
// tests: namespaces, veth pairs, and links through TUN devices that delay
// every packet, so a test can put real distance between a client and a
// server on a kernel without netem.
//
// Everything it creates is removed at the end of the calling test, and
// every helper skips the test, with the reason, when the machine cannot
// run it (not root, no ip command, no /dev/net/tun, not Linux). Addresses
// must come from 198.18.0.0/15 (RFC 2544, never routed) and 2001:db8::/32
// (documentation), so nothing a test does can reach a real network.
package netlab

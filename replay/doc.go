// Package replay reads knocks from a capture file (pcap or pcapng, as
// tcpdump -w writes them) instead of a network interface, for knockd
// --replay.
package replay

// Package kset opens doors by adding knockers to kernel sets whose
// elements expire by themselves (nftables sets and ipsets with timeouts),
// so that an opening closes on time even if the daemon dies, and nothing
// is forked.
package kset

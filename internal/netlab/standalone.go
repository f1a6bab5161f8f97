package netlab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
)

// This file holds the constructors for programs that are not tests (the
// benchmark command): they return errors instead of failing a test, and
// the caller removes what they create.

// CreateNetns is NewNetns for a program: it creates a namespace whose name
// starts with prefix and is unique to this run, with its loopback up. The
// caller deletes it with Delete, after stopping the processes in it.
func CreateNetns(prefix string) (*Netns, error) {
	if err := Available(); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	n := &Netns{name: fmt.Sprintf("%s-%d-%d-%04x", prefix, os.Getpid(), seq.Add(1), rand.Uint32()&0xffff)}
	if out, err := run("ip", "netns", "add", n.name); err != nil {
		return nil, fmt.Errorf("netlab: ip netns add %s: %w: %s", n.name, err, out)
	}
	if _, err := n.ip("link", "set", "lo", "up"); err != nil {
		return nil, errors.Join(fmt.Errorf("netlab: %w", err), n.Delete())
	}
	return n, nil
}

// Delete deletes a namespace made by CreateNetns, and the devices in it.
// Processes still running in it keep it alive, without its name, until
// they exit.
func (n *Netns) Delete() error {
	if out, err := run("ip", "netns", "del", n.name); err != nil {
		return fmt.Errorf("netlab: ip netns del %s: %w: %s", n.name, err, out)
	}
	return nil
}

// TryIP runs "ip -n NAME args..." and returns its output, or an error
// that includes the output.
func (n *Netns) TryIP(arg ...string) (string, error) { return n.ip(arg...) }

// CreateVeth is NewVeth for a program: it joins a and b with a veth pair,
// addressed as addr says, and up. The pair goes away with the namespaces.
func CreateVeth(a, b *Netns, addr Addressing) (*Veth, error) {
	v, err := createVeth(a, b, VethConfig{Addressing: addr})
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	return v, nil
}

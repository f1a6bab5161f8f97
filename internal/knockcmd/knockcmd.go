package knockcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/knock-go/knock/wire"
)

// DefaultTimeout bounds a TCP knock when Options.Timeout is zero. It is
// what a knock costs when the host drops the port silently, so it stays
// short; a host that answers (handshake or reset) costs one round trip.
const DefaultTimeout = 500 * time.Millisecond

// NoWait, as Options.Timeout, sends each TCP knock the way knock 0.8 does:
// the socket is closed as soon as the SYN has left, so the handshake never
// completes and nothing is waited for.
const NoWait time.Duration = -1

// Family restricts the addresses a host name may resolve to.
type Family int

// The address families of -4 and -6.
const (
	AnyFamily Family = iota // whichever address the resolver gives first
	IPv4                    // -4
	IPv6                    // -6
)

// Options are the client's settings. The zero value knocks like knock 0.8
// without options, except that a TCP knock completes its handshake within
// DefaultTimeout.
type Options struct {
	// UDP makes every knock UDP, whatever its argument says (-u).
	UDP bool
	// Delay is the pause after each knock, the last one included (-d).
	Delay time.Duration
	// Family restricts the host's address (-4, -6).
	Family Family
	// Timeout bounds each TCP knock: it ends when the handshake completes,
	// when the host refuses, or when Timeout has passed. Zero means
	// DefaultTimeout; NoWait (or any negative value) means not to wait.
	Timeout time.Duration
	// Verbose prints "hitting PROTO ADDR:PORT" before each knock (-v).
	Verbose bool
	// Resolver resolves the host and service names; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
	// Observe, if not nil, is called after each knock, before the delay.
	Observe func(Result)
}

// Knock is one port argument, parsed.
type Knock struct {
	wire.Knock
	// Name is the port as written on the command line ("ssh", "7000"),
	// which the verbose line repeats as knock 0.8 does.
	Name string
}

// Outcome is how a knock ended.
type Outcome int

// The outcomes of a knock. Each means the knock was sent.
const (
	// Sent: a UDP datagram was handed to the kernel, or a TCP SYN left
	// under NoWait.
	Sent Outcome = iota
	// Connected: the TCP handshake completed; the connection was then
	// reset.
	Connected
	// Rejected: the host, or a firewall on the way, answered with a TCP
	// reset or an ICMP error.
	Rejected
	// TimedOut: no answer came within the timeout; the host drops the
	// port silently.
	TimedOut
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case Connected:
		return "connected"
	case Rejected:
		return "rejected"
	case TimedOut:
		return "timed out"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Result describes one knock that was sent.
type Result struct {
	Knock   Knock
	Addr    netip.AddrPort
	Outcome Outcome
	// Answer is the error the host's answer gave, such as ECONNREFUSED
	// or EHOSTUNREACH. Valid iff Outcome == Rejected.
	Answer error
	// Elapsed is the time the knock took, delay excluded.
	Elapsed time.Duration
}

// UsageError is a command line that knock 0.8 answers with its usage text
// and exit status 1. Msg, when not empty, says what was wrong, as getopt
// says it ("invalid option -- 'x'"), without the program name.
type UsageError struct {
	Msg string
}

func (e *UsageError) Error() string {
	if e.Msg == "" {
		return "knock: bad usage"
	}
	return "knock: " + e.Msg
}

// ResolveError is a host that could not be resolved. It prints as knock
// 0.8's two lines, the second naming the getaddrinfo error that knock 0.8
// would report.
type ResolveError struct {
	Host string
	Port string // the first port argument, which knock 0.8 names too
	Err  error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("Failed to resolve hostname '%s' on port %s\ngetaddrinfo: %s", e.Host, e.Port, gaiText(e.Err))
}

func (e *ResolveError) Unwrap() error { return e.Err }

var errFamily = errors.New("address family for hostname not supported")

// gaiText returns the gai_strerror text glibc gives for the same failure,
// or err's own text when there is no equivalent.
func gaiText(err error) string {
	var dnsErr *net.DNSError
	var addrErr *net.AddrError
	switch {
	case errors.Is(err, errFamily):
		return "Address family for hostname not supported"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound,
		// "no suitable address": the name exists, in the other family.
		errors.As(err, &addrErr):
		return "Name or service not known"
	case errors.As(err, &dnsErr) && (dnsErr.IsTimeout || dnsErr.IsTemporary):
		return "Temporary failure in name resolution"
	}
	return err.Error()
}

// ParseDelay parses the -d value: a whole number of milliseconds.
func ParseDelay(s string) (time.Duration, error) {
	return parseMillis("delay", s)
}

// ParseTimeout parses the --timeout value: a whole number of
// milliseconds, 0 meaning NoWait.
func ParseTimeout(s string) (time.Duration, error) {
	d, err := parseMillis("timeout", s)
	if err == nil && d == 0 {
		d = NoWait
	}
	return d, err
}

func parseMillis(what, s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("knock: invalid %s %q (want a whole number of milliseconds)", what, s)
	}
	if n < 0 {
		// knock 0.8's text.
		return 0, fmt.Errorf("error: %s cannot be negative", what)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// ParseKnock parses one port argument, "port[:proto]". The port is a
// number from 1 to 65535 or a service name; proto is tcp or udp, in any
// case, and defaults to tcp. With udp set the knock is UDP whatever proto
// says (-u). A service name is looked up for the knock's protocol first,
// then for the other one, as getaddrinfo does for knock 0.8. r nil means
// net.DefaultResolver.
func ParseKnock(ctx context.Context, r *net.Resolver, arg string, udp bool) (Knock, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	name, proto, hasProto := strings.Cut(arg, ":")
	k := Knock{Knock: wire.Knock{Proto: wire.TCP}, Name: name}
	if hasProto {
		// knock 0.8 sends anything but a lower-case "udp" as TCP; a
		// typo must not send a knock nobody meant.
		switch strings.ToLower(proto) {
		case "tcp":
		case "udp":
			k.Proto = wire.UDP
		default:
			return Knock{}, fmt.Errorf("knock: %q: unknown protocol %q (want tcp or udp)", arg, proto)
		}
	}
	if udp {
		k.Proto = wire.UDP
	}
	switch {
	case name == "":
		return Knock{}, fmt.Errorf("knock: %q: no port", arg)
	case isDigits(name):
		n, err := strconv.ParseUint(name, 10, 16)
		if err != nil || n == 0 {
			return Knock{}, fmt.Errorf("knock: %q: port out of range (want 1-65535)", arg)
		}
		k.Port = uint16(n)
		return k, nil
	case isServiceName(name):
		other := wire.UDP
		if k.Proto == wire.UDP {
			other = wire.TCP
		}
		for _, p := range []wire.Proto{k.Proto, other} {
			n, err := r.LookupPort(ctx, p.String(), name)
			if err == nil && n > 0 && n <= 0xffff {
				k.Port = uint16(n)
				return k, nil
			}
			if ctx.Err() != nil {
				return Knock{}, ctx.Err()
			}
		}
	}
	return Knock{}, fmt.Errorf("knock: %q: unknown port or service name", arg)
}

// isServiceName reports whether s can be a name in /etc/services: a
// letter, then printable ASCII.
func isServiceName(s string) bool {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// resolve returns the host's first address in fam. A literal is taken as
// it is, zone included.
func resolve(ctx context.Context, r *net.Resolver, host string, fam Family) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if fam != IPv6 {
			a = a.Unmap()
		}
		if fam == IPv4 && !a.Is4() || fam == IPv6 && !a.Is6() {
			return netip.Addr{}, errFamily
		}
		return a, nil
	}
	network := "ip"
	switch fam {
	case IPv4:
		network = "ip4"
	case IPv6:
		network = "ip6"
	}
	addrs, err := r.LookupNetIP(ctx, network, host)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(addrs) == 0 {
		return netip.Addr{}, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	a := addrs[0]
	if fam != IPv6 {
		a = a.Unmap()
	}
	return a, nil
}

// Run knocks on host at each of ports ("port[:proto]" arguments), in order,
// one at a time. Every argument is checked and the host resolved, once,
// before the first knock, so a typo sends nothing. A knock that the host
// refuses or ignores is not an error: it was sent. Errors are bad
// arguments, resolution failures and local failures (no route, a
// socket that cannot be opened); a *ResolveError prints as knock 0.8's
// message. Verbose lines go to stdout.
func Run(ctx context.Context, opts Options, host string, ports []string, stdout io.Writer) error {
	if len(ports) == 0 {
		return &UsageError{}
	}
	r := opts.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	knocks := make([]Knock, 0, len(ports))
	for _, arg := range ports {
		k, err := ParseKnock(ctx, r, arg, opts.UDP)
		if err != nil {
			return err
		}
		knocks = append(knocks, k)
	}
	addr, err := resolve(ctx, r, host, opts.Family)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &ResolveError{Host: host, Port: knocks[0].Name, Err: err}
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	for _, k := range knocks {
		if err := ctx.Err(); err != nil {
			return err
		}
		ap := netip.AddrPortFrom(addr, k.Port)
		if opts.Verbose {
			fmt.Fprintf(stdout, "hitting %s %s:%s\n", k.Proto, addr, k.Name)
		}
		res := Result{Knock: k, Addr: ap, Outcome: Sent}
		start := time.Now()
		if k.Proto == wire.UDP {
			err = knockUDP(ap)
		} else {
			res.Outcome, res.Answer, err = knockTCP(ctx, ap, timeout)
		}
		res.Elapsed = time.Since(start)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("knock: hitting %s %s: %w", k.Proto, ap, err)
		}
		if opts.Observe != nil {
			opts.Observe(res)
		}
		if err := sleep(ctx, opts.Delay); err != nil {
			return err
		}
	}
	return nil
}

// knockUDP sends one datagram holding one zero byte: knock 0.8 sends the
// terminating NUL of an empty C string.
func knockUDP(ap netip.AddrPort) error {
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
	}
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return unwrapOpError(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{0}); err != nil {
		return unwrapOpError(err)
	}
	return nil
}

// unwrapOpError drops the *net.OpError layer, whose text repeats the
// addresses that our own message already gives.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

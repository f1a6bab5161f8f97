package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knock-go/knock/internal/netlab"
)

// servicePort is the port of the service the firewall protects (the
// tutorial's SSH, on another port so that the test never meets a real
// sshd).
const servicePort = 2222

// firewall is one way to drop the service port and open it for one
// address.
type firewall struct {
	name  string
	tool  string                                // the program that must be installed
	setup func(keepEstablished bool) [][]string // commands run in the server namespace
	start string                                // the door's start command, %IP% for the knocker
	stop  string                                // its stop command
	show  []string                              // a command that lists the opening
}

func firewalls() []firewall {
	ipt, _ := exec.LookPath("iptables")
	nft, _ := exec.LookPath("nft")
	port := fmt.Sprint(servicePort)
	return []firewall{{
		name: "iptables",
		tool: "iptables",
		setup: func(keep bool) [][]string {
			c := [][]string{
				{ipt, "-P", "INPUT", "DROP"},
				{ipt, "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
			}
			if keep {
				c = append(c, []string{ipt, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"})
			}
			return c
		},
		// The tutorial's first example, on the service port.
		start: ipt + " -I INPUT -s %IP% -p tcp --dport " + port + " -j ACCEPT",
		stop:  ipt + " -D INPUT -s %IP% -p tcp --dport " + port + " -j ACCEPT",
		show:  []string{ipt, "-S", "INPUT"},
	}, {
		name: "nftables",
		tool: "nft",
		setup: func(keep bool) [][]string {
			est := ""
			if keep {
				est = "ct state established,related accept\n"
			}
			return [][]string{{nft, `table inet knocktest {
	set allowed { type ipv4_addr; }
	chain input {
		type filter hook input priority 0; policy drop;
		iif "lo" accept
		` + est + `ip saddr @allowed tcp dport ` + port + ` accept
	}
}`}}
		},
		start: nft + " add element inet knocktest allowed { %IP% }",
		stop:  nft + " delete element inet knocktest allowed { %IP% }",
		show:  []string{nft, "list", "set", "inet", "knocktest", "allowed"},
	}}
}

// TestFirewallTutorial does what the tutorial is for: a service port
// dropped by the firewall (iptables, and separately nftables, with the
// policy DROP that also hides the knock ports), our knockd on the raw
// backend, and a door whose start command opens the port to the knocker's
// address only, and whose stop command closes it Cmd_Timeout later. A
// knocker reaches the service only after knocking; a third namespace that
// did not knock never does; after Cmd_Timeout new connections fail again.
// A connection opened in the window survives the close when the ruleset
// accepts established connections, and stalls when it does not: the
// answer to the tutorial's open question.
func TestFirewallTutorial(t *testing.T) {
	t.Parallel()
	requireLab(t, "ip")
	for _, fw := range firewalls() {
		for _, keep := range []bool{true, false} {
			name := fw.name + "/established kept"
			if !keep {
				name = fw.name + "/established not kept"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				firewallCase(t, fw, keep)
			})
		}
	}
}

func firewallCase(t *testing.T, fw firewall, keep bool) {
	requireLab(t, "ip", fw.tool)
	srv := netlab.NewNetns(t, "kfw-srv")
	cli := netlab.NewNetns(t, "kfw-cli")
	other := netlab.NewNetns(t, "kfw-oth")
	toCli := netlab.NewVeth(t, srv, cli, netlab.Addressing{A: netip.MustParseAddr("198.18.0.1"), B: netip.MustParseAddr("198.18.0.2"), NoIPv6: true})
	toOther := netlab.NewVeth(t, srv, other, netlab.Addressing{A: netip.MustParseAddr("198.18.1.1"), B: netip.MustParseAddr("198.18.1.2"), NoIPv6: true})
	cliIP, otherIP := toCli.B.Addr.String(), toOther.B.Addr.String()
	serviceForCli := net.JoinHostPort(toCli.A.Addr.String(), fmt.Sprint(servicePort))
	serviceForOther := net.JoinHostPort(toOther.A.Addr.String(), fmt.Sprint(servicePort))

	// The firewall, or a skip when this kernel or tool cannot have it.
	if out, err := srv.Command(fw.show[0], "--version").CombinedOutput(); err != nil {
		t.Skipf("%s does not run: %v: %s", fw.tool, err, out)
	}
	for _, c := range fw.setup(keep) {
		if out, err := srv.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Skipf("cannot set up the %s ruleset in a namespace (kernel support missing?): %s: %v: %s", fw.name, strings.Join(c, " "), err, out)
		}
	}

	startEcho(t, srv, servicePort)

	dir := t.TempDir()
	conf := filepath.Join(dir, "knockd.conf")
	writeFile(t, conf, fmt.Sprintf(`[options]
	logfile = knockd.log
[openService]
	sequence = 7000,8000,9000
	seq_timeout = 5
	tcpflags = syn
	start_command = %s
	cmd_timeout = 3
	stop_command = %s
`, fw.start, fw.stop))
	d := startOurs(t, srv, dir, conf, toCli.A.Dev+","+toOther.A.Dev)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_DUMP") != "" {
			out, _ := srv.Command(fw.show[0], fw.show[1:]...).CombinedOutput()
			t.Logf("knockd output:\n%s\nfirewall:\n%s", d.output(), out)
		}
	})

	// Closed to everybody before any knock.
	mustNotConnect(t, cli, serviceForCli, "from the client before it knocked")
	mustNotConnect(t, other, serviceForOther, "from the third namespace before any knock")

	// The knock, with the tutorial's client when it is installed. The
	// knock ports are dropped too: the raw backend sees them anyway.
	client := clientOrOurs()
	knockFrom(t, cli, client, toCli.A.Addr.String(), "7000", "8000", "9000")
	waitOutput(t, d, cliIP+": openService: OPEN SESAME", 1)
	opened := time.Now()
	held := waitConnect(t, cli, serviceForCli, "from the knocker after its knock")
	defer held.Close()
	if err := echoOnce(held, "during the window"); err != nil {
		t.Fatalf("the knocker's connection does not work in the window: %v", err)
	}
	out, _ := srv.Command(fw.show[0], fw.show[1:]...).CombinedOutput()
	if !strings.Contains(string(out), cliIP) || strings.Contains(string(out), otherIP) {
		t.Errorf("the opening is not for %s only:\n%s", cliIP, out)
	}
	mustNotConnect(t, other, serviceForOther, "from the third namespace, which did not knock, while the door is open")

	// Cmd_Timeout later, the stop command closes the door again.
	waitOutput(t, d, cliIP+": openService: command timeout", 1)
	closed := waitNoConnect(t, cli, serviceForCli)
	if el := closed.Sub(opened); el < 2500*time.Millisecond || el > 8*time.Second {
		t.Errorf("the door closed %v after it opened, want about Cmd_Timeout (3s)", el)
	}
	mustNotConnect(t, other, serviceForOther, "from the third namespace after the close")

	// The connection opened in the window.
	err := echoOnce(held, "after the close")
	switch {
	case keep && err != nil:
		t.Errorf("the ruleset accepts established connections, yet the connection opened in the window died at the close: %v", err)
	case !keep && err == nil:
		t.Errorf("the ruleset drops everything not explicitly accepted, yet the connection opened in the window still works after the close")
	case keep:
		t.Logf("%s: the connection opened in the window survives the close (ct state established accepted)", fw.name)
	default:
		t.Logf("%s: the connection opened in the window stalls after the close (%v)", fw.name, err)
	}
}

// startEcho serves a TCP echo service on port in ns, from this process:
// the listening socket is opened inside the namespace.
func startEcho(t *testing.T, ns *netlab.Netns, port int) net.Listener {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port)) // IPv4 and IPv6
		return err
	}); err != nil {
		t.Fatalf("listening on %d in %s: %v", port, ns, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l
}

// dialFrom connects to addr from inside ns.
func dialFrom(ns *netlab.Netns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr) // the address says which family
		return err
	})
	return c, err
}

// dropTimeout is how long a connection attempt waits before the test
// concludes that the firewall dropped its SYN.
const dropTimeout = 500 * time.Millisecond

// mustNotConnect checks that a connection from ns to addr fails, its SYN
// dropped.
func mustNotConnect(t *testing.T, ns *netlab.Netns, addr, what string) {
	t.Helper()
	c, err := dialFrom(ns, addr, dropTimeout)
	if err == nil {
		c.Close()
		t.Errorf("connected to the service %s", what)
		return
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("connecting %s: %v, want a timeout (a dropped SYN)", what, err)
		}
	}
}

// waitConnect connects from ns to addr, trying again until the door's
// start command has run.
func waitConnect(t *testing.T, ns *netlab.Netns, addr, what string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dialFrom(ns, addr, dropTimeout)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot connect to the service %s: %v", what, err)
		}
	}
}

// waitNoConnect connects from ns to addr until that fails, and returns
// when it first did.
func waitNoConnect(t *testing.T, ns *netlab.Netns, addr string) time.Time {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		start := time.Now()
		c, err := dialFrom(ns, addr, dropTimeout)
		if err != nil {
			return start
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the service is still reachable 15s after the door opened")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// echoOnce sends a line on c and reads it back, within a second.
func echoOnce(c net.Conn, what string) error {
	msg := "ping " + what + "\n"
	c.SetDeadline(time.Now().Add(time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

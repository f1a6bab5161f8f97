package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Timeout bounds a connection's life: a peer that sends nothing, or reads
// nothing, is dropped.
const Timeout = 5 * time.Second

// maxConns bounds the connections served at once; more are closed at once.
const maxConns = 8

// A Handler answers requests. Its methods run on the server's goroutines,
// never on the matcher's, and must not wait for it.
type Handler interface {
	Status() *Status
	// Revoke closes src's openings (on door only, unless door is empty)
	// and returns them.
	Revoke(src netip.Addr, door string) []Opening
}

// Server is a listening control socket.
type Server struct {
	path string
	ln   *net.UnixListener
	fi   os.FileInfo // the socket file, so that Close removes only its own
	uid  int
	logf func(format string, args ...any)
	once sync.Once
}

// ErrAnswering is wrapped by Listen's error when a live daemon already
// answers on the path.
var ErrAnswering = errors.New("another knockd is answering")

// Listen creates the control socket at path, mode 0600, in a directory
// it creates (0700) if missing. A socket file there that no process
// answers on (left by a daemon that died) is replaced; one that answers
// is an error wrapping ErrAnswering, and a file that is not a socket is
// never removed. logf receives the refusals.
func Listen(path string, logf func(format string, args ...any)) (*Server, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := supported(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control: creating the directory of the control socket: %w (set ControlSocket in [options] or --control)", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a socket: remove it, or choose another ControlSocket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %w on %s: stop it, or give this instance its own ControlSocket (or --control)", ErrAnswering, path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control: %s exists and cannot be tested: %w", path, err)
		}
		// Stale: its daemon is gone.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: removing the stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// Closing the listener must not remove a file that a later instance
	// may own by then: Close removes it itself, if it is still this one.
	ln.SetUnlinkOnClose(false)
	s := &Server{path: path, ln: ln, uid: os.Geteuid(), logf: logf}
	// The peer check is what guards the socket; the mode keeps others
	// from even connecting.
	if err := os.Chmod(path, 0o600); err != nil {
		s.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	if s.fi, err = os.Lstat(path); err != nil {
		s.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return s, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers connections until ctx ends or Close is called, and waits
// for those it is serving before it returns.
func (s *Server) Serve(ctx context.Context, h Handler) {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	sem := make(chan struct{}, maxConns)
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: wait rather than spin.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.serveConn(c, h)
		}()
	}
}

func (s *Server) serveConn(c *net.UnixConn, h Handler) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(Timeout))
	reply := func(r Response) {
		// Room to answer a peer whose time ran out while it said nothing.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		b, err := json.Marshal(r)
		if err != nil {
			b, _ = json.Marshal(Response{Error: err.Error()})
		}
		c.Write(append(b, '\n'))
	}
	uid, pid, err := peer(c)
	if err != nil {
		s.logf("control: refused a connection: cannot tell who it is: %v", err)
		return
	}
	if uid != 0 && uid != s.uid {
		// Read what it sent (bounded, like any request), so that closing
		// does not reset the connection before it reads the refusal.
		io.Copy(io.Discard, io.LimitReader(c, MaxRequest))
		who := fmt.Sprintf("uid %d and root", s.uid)
		if s.uid == 0 {
			who = "root"
		}
		s.logf("control: refused a connection from uid %d (pid %d): only %s may ask", uid, pid, who)
		reply(Response{Error: fmt.Sprintf("refused: uid %d may not use this control socket (only %s may)", uid, who)})
		return
	}
	req, err := DecodeRequest(c)
	if err != nil {
		reply(Response{Error: err.Error()})
		return
	}
	switch req.Cmd {
	case CmdStatus:
		reply(Response{Status: h.Status()})
	case CmdRevoke:
		src, _ := netip.ParseAddr(req.Src)
		revoked := h.Revoke(src, req.Door)
		if len(revoked) == 0 {
			what := "no opening"
			if req.Door != "" {
				what += " on door " + req.Door
			}
			reply(Response{Error: fmt.Sprintf("nothing to revoke: %s has %s", src, what)})
			return
		}
		reply(Response{Revoked: revoked})
	}
}

// Close stops listening and removes the socket file, unless another
// instance has replaced it. Close is idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		err = s.ln.Close()
		if fi, serr := os.Lstat(s.path); serr == nil && s.fi != nil && os.SameFile(fi, s.fi) {
			os.Remove(s.path)
		}
	})
	return err
}

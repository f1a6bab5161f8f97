package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrNoDaemon is wrapped by Ask's error when no daemon answers on the
// socket.
var ErrNoDaemon = errors.New("no knockd answers")

// Ask sends req on the control socket at path and returns the response.
// A response with an Error is returned as is, with a nil error.
func Ask(path string, req Request) (*Response, error) {
	c, err := net.DialTimeout("unix", path, Timeout)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w on %s: there is no socket there (is the daemon running, with this -c, or with ControlSocket or --control set to another path?)", ErrNoDaemon, path)
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w on %s: the socket is left from a daemon that stopped", ErrNoDaemon, path)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("cannot connect to %s: permission denied: run as the daemon's user or root", path)
		}
		return nil, fmt.Errorf("cannot connect to %s: %w", path, err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(Timeout))
	b, _ := json.Marshal(req)
	if _, err := uc.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("sending to %s: %w", path, err)
	}
	uc.CloseWrite()
	data, err := io.ReadAll(io.LimitReader(uc, MaxResponse))
	if err != nil {
		return nil, fmt.Errorf("reading from %s: %w", path, err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s closed the connection without an answer (too many clients at once?)", path)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("the answer on %s is not knockd's: %w", path, err)
	}
	return &resp, nil
}

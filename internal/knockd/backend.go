package knockd

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/knock-go/knock/capture"
	"github.com/knock-go/knock/config"
	"github.com/knock-go/knock/listener"
	"github.com/knock-go/knock/rawsock"
)

// A SourceFunc opens a capture source for spec, as a backend's New does:
// every socket open on return (see capture.Source). logf receives the
// source's lifecycle lines.
type SourceFunc func(spec capture.Spec, logf func(format string, args ...any)) (capture.Source, error)

// backends are the capture backends --backend names, besides auto.
var backends = map[string]SourceFunc{
	"raw": func(spec capture.Spec, logf func(string, ...any)) (capture.Source, error) {
		return rawsock.New(spec, rawsock.Options{Logf: logf})
	},
	"listener": func(spec capture.Spec, logf func(string, ...any)) (capture.Source, error) {
		return listener.New(spec, listener.Options{Logf: logf})
	},
}

// checkBackend returns an error for a --backend value that names no
// backend.
func checkBackend(name string) error {
	if _, ok := backends[name]; ok || name == "" || name == "auto" {
		return nil
	}
	return fmt.Errorf("unknown backend %q: use auto, raw or listener", name)
}

// openSource opens Options.NewSource's source, or the backend asked for,
// or for auto the raw one when this process may, else the listener.
func (d *daemon) openSource(spec capture.Spec) (capture.Source, error) {
	logf := func(format string, args ...any) {
		if d.quietSource.Load() {
			d.log.Debugf(format, args...)
			return
		}
		d.log.Log(format, args...)
	}
	if d.opts.NewSource != nil {
		return d.opts.NewSource(spec, logf)
	}
	if err := checkBackend(d.opts.Backend); err != nil {
		return nil, err
	}
	name := d.opts.Backend
	if name == "" || name == "auto" {
		name = "raw"
		if err := rawsock.Available(); err != nil {
			why := err.Error()
			if errors.Is(err, os.ErrPermission) {
				why = "no CAP_NET_RAW for packet sockets"
			}
			d.log.Log("backend: listener (raw backend unavailable: %s)", why)
			name = "listener"
		} else {
			d.log.Log("backend: raw (this process may open packet sockets)")
		}
	}
	return backends[name](spec, logf)
}

// warnUnsupported reports the doors the source can never open.
func (d *daemon) warnUnsupported(doors []*config.Door) {
	l, ok := d.src.(capture.Limiter)
	if !ok {
		return
	}
	for _, door := range doors {
		if why := l.Unsupported(door); why != "" {
			d.log.Error("warning: door %s: %s", door.Name, why)
		}
	}
}

// BackendNames are the values --backend takes: auto, then the backends
// by name.
func BackendNames() []string {
	names := []string{"auto"}
	for name := range backends {
		names = append(names, name)
	}
	sort.Strings(names[1:])
	return names
}

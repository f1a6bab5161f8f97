package knockd

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/knock-go/knock/capture"
)

// dump prints, with -D, what knockd 0.8's -D prints at start: the
// configuration as parsed (in the words of --check, each line after
// "config: "), the capture backend, the host's addresses it takes knocks
// on and its filter (the raw backend's BPF program, disassembled), or the
// listener's sockets.
func (d *daemon) dump(spec capture.Spec) {
	if !d.log.Debugging() {
		return
	}
	var b bytes.Buffer
	c := &checker{opts: d.opts, cfg: d.cfg, out: &b, errs: io.Discard}
	c.options()
	for _, door := range d.cfg.Doors {
		c.door(door)
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if l != "" {
			d.log.Debugf("config: %s", l)
		}
	}
	for _, p := range spec.Ports {
		d.log.Debugf("watching %s", portLine(p))
	}
	if d.src == nil {
		return
	}
	d.log.Debugf("backend: %s", d.src.Name())
	if ds, ok := d.src.(capture.Describer); ok {
		for _, l := range ds.Describe() {
			d.log.Debugf("%s", l)
		}
	}
}

// portLine describes a watched port: "7000/tcp for openSSH, flags syn".
func portLine(p capture.Port) string {
	s := fmt.Sprintf("%d/%s for %s", p.Port, p.Proto, strings.Join(p.Doors, ", "))
	var flags []string
	for _, f := range p.Flags {
		if f.String() == "" {
			flags = append(flags, "any")
		} else {
			flags = append(flags, f.String())
		}
	}
	if len(flags) > 0 {
		s += ", TCPFlags " + strings.Join(flags, " or ")
	}
	if p.Targets != nil {
		t := make([]string, len(p.Targets))
		for i, a := range p.Targets {
			t[i] = a.String()
		}
		s += ", to " + strings.Join(t, ", ")
	}
	if p.Sources != nil {
		t := make([]string, len(p.Sources))
		for i, a := range p.Sources {
			t[i] = a.String()
		}
		s += ", from " + strings.Join(t, ", ")
	}
	return s
}

package knockd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/knock-go/knock/capture"
)

// metrics serves /metrics from a registry of its own: knockd's series,
// read at each scrape from counters the matcher publishes (a scrape never
// waits for the matcher), and the Go runtime's and the process's.
type metrics struct {
	ln  net.Listener
	srv *http.Server
}

// metricsAddress is where /metrics is served: --metrics, else
// MetricsAddress; empty means nowhere.
func (d *daemon) metricsAddress() string {
	if d.opts.Metrics != "" {
		return d.opts.Metrics
	}
	return d.cfg.MetricsAddress
}

// openMetrics binds the metrics address, so that a port in use stops
// start-up with a clear message.
func (d *daemon) openMetrics() error {
	addr := d.metricsAddress()
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: cannot listen on %s: %w (change MetricsAddress or --metrics)", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{d: d})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: metricsLog{d}, Timeout: 10 * time.Second}))
	d.metrics = &metrics{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}}
	d.log.Log("metrics: serving http://%s/metrics", ln.Addr())
	return nil
}

// serve serves until close.
func (m *metrics) serve() {
	if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// Only an accept error ends Serve; the daemon goes on without.
		_ = err
	}
}

func (m *metrics) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if m.srv.Shutdown(ctx) != nil {
		m.srv.Close()
	}
}

type metricsLog struct{ d *daemon }

func (l metricsLog) Println(v ...any) { l.d.log.Error("metrics: %s", fmt.Sprint(v...)) }

var (
	descPackets   = prometheus.NewDesc("knockd_packets_total", "Packets (raw) or connections and datagrams (listener) the capture read.", []string{"backend"}, nil)
	descDropped   = prometheus.NewDesc("knockd_packets_dropped_total", "Knocks lost on the way: dropped by the kernel (raw) or abandoned at shutdown (listener).", []string{"backend"}, nil)
	descMalformed = prometheus.NewDesc("knockd_packets_malformed_total", "Packets that did not decode (raw).", []string{"backend"}, nil)
	descIgnored   = prometheus.NewDesc("knockd_packets_ignored_total", "Well-formed packets no door wants (raw).", []string{"backend"}, nil)
	descStages    = prometheus.NewDesc("knockd_stages_total", "Knocks that started or advanced an attempt (the Stage N lines).", []string{"door"}, nil)
	descOpenings  = prometheus.NewDesc("knockd_openings_total", "Completed sequences (the OPEN SESAME lines).", []string{"door"}, nil)
	descTimeouts  = prometheus.NewDesc("knockd_timeouts_total", "Attempts that timed out.", []string{"door"}, nil)
	descEvicted   = prometheus.NewDesc("knockd_evictions_total", "Attempts at stage 1 pushed out to make room (MaxAttempts).", nil, nil)
	descRefused   = prometheus.NewDesc("knockd_refused_attempts_total", "New attempts refused: the state was full of attempts further along.", nil, nil)
	descInProg    = prometheus.NewDesc("knockd_attempts_in_progress", "Knock attempts in progress.", nil, nil)
	descMaxAtt    = prometheus.NewDesc("knockd_attempts_max", "MaxAttempts in force.", nil, nil)
	descPending   = prometheus.NewDesc("knockd_pending_openings", "Openings not closed yet, by door and by what closes them (command: a stop command; set: the kernel).", []string{"door", "via"}, nil)
	descCmds      = prometheus.NewDesc("knockd_commands_total", "Start and stop commands, by outcome: started, failed (could not start or exited non-zero), refused (queue full), killed (past CommandLimit), dropped (shutdown).", []string{"result"}, nil)
	descRunning   = prometheus.NewDesc("knockd_commands_running", "Commands running now.", nil, nil)
	descWaiting   = prometheus.NewDesc("knockd_commands_waiting", "Start commands waiting for a slot.", nil, nil)
	descSetDrop   = prometheus.NewDesc("knockd_set_additions_dropped_total", "Kernel set additions not made: too many waiting.", nil, nil)
)

// collector reads the daemon's counters at each scrape.
type collector struct{ d *daemon }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descDropped, descMalformed, descIgnored, descStages, descOpenings, descTimeouts,
		descEvicted, descRefused, descInProg, descMaxAtt, descPending, descCmds, descRunning, descWaiting, descSetDrop} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	backend := d.src.Name()
	if cs, ok := d.src.(capture.Counter); ok {
		s := cs.Stats()
		counter(descPackets, s.Received+s.Accepted, backend)
		counter(descDropped, s.Dropped, backend)
		counter(descMalformed, s.Malformed, backend)
		counter(descIgnored, s.Ignored, backend)
	}
	for _, dc := range d.count.snapshot() {
		counter(descStages, dc.stages, dc.name)
		counter(descOpenings, dc.opens, dc.name)
		counter(descTimeouts, dc.timeouts, dc.name)
	}
	ms := d.loop.Stats()
	counter(descEvicted, ms.Evicted)
	counter(descRefused, ms.Refused)
	gauge(descInProg, float64(ms.InProgress))
	gauge(descMaxAtt, float64(ms.MaxAttempts))

	type key struct{ door, via string }
	pending := map[key]int{}
	for _, dr := range d.config().Doors {
		// Every door shows, at 0 when nothing is open.
		if dr.StopCommand != "" || dr.StopCommand6 != "" {
			pending[key{dr.Name, "command"}] += 0
		}
		if dr.NFTSet != zeroSet || dr.NFTSet6 != zeroSet || dr.IPSet != "" || dr.IPSet6 != "" {
			pending[key{dr.Name, "set"}] += 0
		}
	}
	for _, o := range d.runner.Pending() {
		pending[key{o.Door, "command"}]++
	}
	for _, e := range d.sets.Pending() {
		pending[key{e.Door, "set"}]++
	}
	for k, n := range pending {
		gauge(descPending, float64(n), k.door, k.via)
	}

	rs := d.runner.Stats()
	counter(descCmds, rs.Started, "started")
	counter(descCmds, rs.Failed, "failed")
	counter(descCmds, rs.Rejected, "refused")
	counter(descCmds, rs.Killed, "killed")
	counter(descCmds, rs.Dropped, "dropped")
	gauge(descRunning, float64(rs.Running))
	gauge(descWaiting, float64(rs.Waiting))
	counter(descSetDrop, d.sets.Dropped())
}

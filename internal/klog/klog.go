// Package klog writes knockd's log lines: to standard output with -v, to
// the LogFile as "[YYYY-MM-DD HH:MM] message", and to syslog as Debian's
// knockd 0.8 sends them: one datagram per line to /dev/log, facility
// daemon, level notice, tag "knockd" with no pid
// ("<29>Jan  2 15:04:05 knockd: message").
//
// With Options.JSON, the -v and -D output and the LogFile take each line
// as one JSON object instead, written by log/slog's JSON handler:
// {"time":…,"event":…,"door":…,"src":…,"stage":…,"msg":…}, the door,
// source and stage only where the line is about them, and msg the text
// line. Syslog and standard error keep the text.
package klog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultSyslogPath is the system logger's socket.
const DefaultSyslogPath = "/dev/log"

// Options say where lines go. The zero value logs nowhere.
type Options struct {
	// Verbose receives the -v lines; nil when -v is off.
	Verbose io.Writer
	// Debug receives the -D lines; nil when -D is off.
	Debug io.Writer
	// Errors receives error lines (always shown); nil means os.Stderr.
	Errors io.Writer
	// LogFile is the LogFile path; empty for none.
	LogFile string
	// Syslog sends lines to the system log.
	Syslog bool
	// SyslogPath is the system logger's socket; empty means
	// DefaultSyslogPath.
	SyslogPath string
	// Now is the clock for time stamps; nil means time.Now.
	Now func() time.Time
	// JSON writes the Verbose and Debug output and the LogFile as JSON
	// lines.
	JSON bool
	// Stamped starts the text lines of Verbose and Debug with their time
	// ("2026-12-01 23:05:07.123 "), for knockd --replay, whose lines
	// are in the capture's time.
	Stamped bool
}

// Logger writes log lines. Its methods are safe for concurrent use.
type Logger struct {
	opts   Options
	mu     sync.Mutex
	file   *os.File
	syslog *syslogConn
	// The JSON handlers of Verbose, Debug and the file; nil unless
	// opts.JSON (and the output is there).
	jverbose, jdebug, jfile slog.Handler
}

// Event names the kind of an Entry for the JSON form. Lines that are not
// about a knock use EventMessage, EventError or EventDebug.
type Event string

// The events of JSON lines.
const (
	EventMessage Event = "message" // any other line
	EventError   Event = "error"   // a line also shown on standard error
	EventDebug   Event = "debug"   // a -D line
	EventStage   Event = "stage"   // "IP: door: Stage N"
	EventOpen    Event = "open"    // "IP: door: OPEN SESAME"
	EventTimeout Event = "timeout" // "IP: door: sequence timeout (stage N)"
	// EventEnded is an attempt that ended without opening, with -D
	// ("IP: door: attempt ended at stage N: ...").
	EventEnded Event = "attempt ended"
	// EventIgnored is a knock a door did not take, with -D ("IP: door:
	// ... ignored at stage N: ...").
	EventIgnored Event = "ignored"
	// EventReplay is a used time-derived sequence sent again ("IP: door:
	// used sequence replayed (step N): nothing opened"), or one of a
	// spent step ("IP: door: sequence of spent step N refused: ...").
	EventReplay Event = "replay"
)

// Entry is one log line and, for the JSON form, what it is about.
type Entry struct {
	// Time is when it happened; zero means now (Options.Now).
	Time  time.Time
	Event Event
	// Door is the door's name; empty when the line is about no door.
	Door string
	// Src is the knocker; invalid when the line is about none.
	Src netip.Addr
	// Stage is the knocks matched; 0 when the line is about no attempt.
	Stage int
	// Msg is the text line.
	Msg string
}

// newJSON returns the JSON handler for w: no level (the event says what
// a line is), the time as the Entry's.
func newJSON(w io.Writer) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		},
	})
}

// writeJSON writes e to h.
func writeJSON(h slog.Handler, e Entry) {
	r := slog.NewRecord(e.Time, slog.LevelInfo, e.Msg, 0)
	r.AddAttrs(slog.String("event", string(e.Event)))
	if e.Door != "" {
		r.AddAttrs(slog.String("door", e.Door))
	}
	if e.Src.IsValid() {
		r.AddAttrs(slog.String("src", e.Src.String()))
	}
	if e.Stage > 0 {
		r.AddAttrs(slog.Int("stage", e.Stage))
	}
	_ = h.Handle(context.Background(), r)
}

// New opens the log file (for appending) and syslog. As with knockd 0.8,
// neither is a reason to stop: a log file that cannot be opened and a
// system logger that does not answer are warnings on Errors.
func New(opts Options) *Logger {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Errors == nil {
		opts.Errors = os.Stderr
	}
	if opts.SyslogPath == "" {
		opts.SyslogPath = DefaultSyslogPath
	}
	l := &Logger{opts: opts}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setJSONLocked(opts.JSON)
	if opts.Syslog {
		l.openSyslog()
	}
	if opts.LogFile != "" {
		l.file, _ = l.openFile(opts.LogFile, "going on without it")
		l.setJSONLocked(opts.JSON)
	}
	return l
}

// SetJSON turns the JSON form on or off (a reload's LogFormat).
func (l *Logger) SetJSON(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setJSONLocked(on)
}

func (l *Logger) setJSONLocked(on bool) {
	l.opts.JSON = on
	l.jverbose, l.jdebug, l.jfile = nil, nil, nil
	if !on {
		return
	}
	if l.opts.Verbose != nil {
		l.jverbose = newJSON(l.opts.Verbose)
	}
	if l.opts.Debug != nil {
		l.jdebug = newJSON(l.opts.Debug)
	}
	if l.file != nil {
		l.jfile = newJSON(l.file)
	}
}

// openSyslog connects to the system logger. When it does not answer the
// lines are not lost for good: every line tries again, as syslog(3) does.
func (l *Logger) openSyslog() {
	l.syslog = &syslogConn{path: l.opts.SyslogPath}
	if err := l.syslog.connect(); err != nil {
		l.errorLocked(fmt.Sprintf("warning: cannot connect to syslog: %v: UseSyslog lines are not logged until the system logger answers (start it, or use LogFile)", err))
	}
}

// openFile opens path for appending. When it cannot, it says so on Errors
// (and wherever else lines go) in knockd 0.8's words, followed by the
// path, what to do and then (instead).
func (l *Logger) openFile(path, then string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		l.errorLocked(fmt.Sprintf("warning: cannot open logfile: %s: %s (fix LogFile in [options] or -g; %s)", strerror(err), path, then))
		return nil, err
	}
	return f, nil
}

// strerror renders err as C's strerror(3) would ("Permission denied"),
// which is what knockd 0.8's perror prints.
func strerror(err error) string {
	var errno syscall.Errno
	var pe *fs.PathError
	switch {
	case errors.As(err, &errno):
		s := errno.Error()
		r, n := utf8.DecodeRuneInString(s)
		return string(unicode.ToUpper(r)) + s[n:]
	case errors.As(err, &pe):
		return pe.Err.Error()
	}
	return err.Error()
}

// Reload follows a re-read configuration, as knockd 0.8 does on SIGHUP:
// the log file is opened again (at logFile, which may be a new path, or
// the same one after log rotation) and syslog is turned on or off. The
// new file is opened before the old one is closed; when it cannot be
// opened, the warning says so and lines keep going to the old one.
func (l *Logger) Reload(logFile string, useSyslog bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case useSyslog && l.syslog == nil:
		l.openSyslog()
	case !useSyslog && l.syslog != nil:
		l.syslog.close()
		l.syslog = nil
	}
	old := l.opts.LogFile
	if l.file != nil {
		l.verboseLocked(l.stamp(Entry{Event: EventMessage, Msg: "closing log file: " + old}))
	}
	if logFile == "" {
		if l.file != nil {
			l.file.Close()
			l.file = nil
			l.jfile = nil
		}
		l.opts.LogFile = ""
		return
	}
	then := "going on without it"
	if l.file != nil {
		then = "still logging to " + old
	}
	f, err := l.openFile(logFile, then)
	if err != nil {
		return
	}
	if l.file != nil {
		l.file.Close()
	}
	l.file = f
	l.setJSONLocked(l.opts.JSON)
	l.opts.LogFile = logFile
	e := l.stamp(Entry{Event: EventMessage, Msg: "re-opening log file: " + logFile})
	l.verboseLocked(e)
	l.record(e)
}

// Close closes the log file and syslog.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
		l.jfile = nil
	}
	if l.syslog != nil {
		l.syslog.close()
		l.syslog = nil
	}
	return nil
}

// Log writes a line everywhere: -v output, log file and syslog. This is
// the pair vprint+logprint of knockd, used for knock events.
func (l *Logger) Log(format string, args ...any) {
	l.LogEntry(Entry{Event: EventMessage, Msg: fmt.Sprintf(format, args...)})
}

// LogEntry writes e everywhere, as Log does.
func (l *Logger) LogEntry(e Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e = l.stamp(e)
	l.verboseLocked(e)
	l.record(e)
}

// stamp fills in e's time.
func (l *Logger) stamp(e Entry) Entry {
	if e.Time.IsZero() {
		e.Time = l.opts.Now()
	}
	return e
}

// Record writes a line to the log file and syslog only.
func (l *Logger) Record(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(l.stamp(Entry{Event: EventMessage, Msg: msg}))
}

// Verbose writes a line to the -v output only.
func (l *Logger) Verbose(format string, args ...any) {
	if l.opts.Verbose == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verboseLocked(l.stamp(Entry{Event: EventMessage, Msg: msg}))
}

func (l *Logger) verboseLocked(e Entry) {
	switch {
	case l.jverbose != nil:
		writeJSON(l.jverbose, e)
	case l.opts.Verbose != nil:
		l.text(l.opts.Verbose, e)
	}
}

// Debugging reports whether -D lines are shown, so that callers can skip
// the work of building them.
func (l *Logger) Debugging() bool { return l.opts.Debug != nil }

// Debugf writes a -D line.
func (l *Logger) Debugf(format string, args ...any) {
	if l.opts.Debug == nil {
		return
	}
	l.DebugEntry(Entry{Event: EventDebug, Msg: fmt.Sprintf(format, args...)})
}

// DebugEntry writes e as a -D line.
func (l *Logger) DebugEntry(e Entry) {
	if l.opts.Debug == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.jdebug != nil {
		writeJSON(l.jdebug, l.stamp(e))
		return
	}
	l.text(l.opts.Debug, l.stamp(e))
}

// text writes e's text line to w.
func (l *Logger) text(w io.Writer, e Entry) {
	if l.opts.Stamped && !e.Time.IsZero() {
		fmt.Fprintf(w, "%s %s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Msg)
		return
	}
	fmt.Fprintln(w, e.Msg)
}

// Error writes a line to standard error, the log file and syslog.
func (l *Logger) Error(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errorLocked(msg)
}

func (l *Logger) errorLocked(msg string) {
	fmt.Fprintln(l.opts.Errors, msg)
	l.record(l.stamp(Entry{Event: EventError, Msg: msg}))
}

func (l *Logger) record(e Entry) {
	if l.file == nil && l.syslog == nil {
		return
	}
	t := e.Time
	switch {
	case l.jfile != nil:
		writeJSON(l.jfile, e)
	case l.file != nil:
		fmt.Fprintf(l.file, "[%04d-%02d-%02d %02d:%02d] %s\n", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), e.Msg)
	}
	if l.syslog != nil {
		// Like syslog(3) without LOG_CONS, a line the system logger
		// does not take is dropped.
		_ = l.syslog.send(syslogLine(t, e.Msg))
	}
}

// Priority is what knockd 0.8 as Debian builds it logs with:
// LOG_DAEMON|LOG_NOTICE.
const priority = 3<<3 | 5

// syslogLine is the datagram glibc's syslog(3) sends for msg at time t:
// "<29>Jan  2 15:04:05 knockd: msg" (local time, the day padded with a
// space, no pid, no newline added).
func syslogLine(t time.Time, msg string) []byte {
	b := fmt.Appendf(nil, "<%d>", priority)
	b = t.AppendFormat(b, "Jan _2 15:04:05 ")
	b = append(b, "knockd: "...)
	b = append(b, msg...)
	if withNewline.MatchString(msg) {
		b = append(b, '\n')
	}
	return b
}

// withNewline matches the lines whose text knockd 0.8 hands to syslog(3)
// with a trailing newline (its format strings end in "\n"; glibc sends
// it on as it is), so that their datagrams are the same byte for byte.
var withNewline = regexp.MustCompile(`^(re-reading config file: |re-opening log file: |no more sequences left in the one time sequences file for door |error while disabling used one time sequence for door )|: running command: |: sequence timeout \(stage \d+\)$`)

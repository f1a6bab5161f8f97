// Package klog writes knockd's log lines: to standard output with -v, to
// the LogFile as "[YYYY-MM-DD HH:MM] message", and to syslog as Debian's
// knockd 0.8 sends them: one datagram per line to /dev/log, facility
// daemon, level notice, tag "knockd" with no pid
// ("<29>Jan  2 15:04:05 knockd: message").
package klog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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
}

// Logger writes log lines. Its methods are safe for concurrent use.
type Logger struct {
	opts   Options
	mu     sync.Mutex
	file   *os.File
	syslog *syslogConn
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
	if opts.Syslog {
		l.openSyslog()
	}
	if opts.LogFile != "" {
		l.file, _ = l.openFile(opts.LogFile, "going on without it")
	}
	return l
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
		l.verboseLocked("closing log file: " + old)
	}
	if logFile == "" {
		if l.file != nil {
			l.file.Close()
			l.file = nil
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
	l.opts.LogFile = logFile
	msg := "re-opening log file: " + logFile
	l.verboseLocked(msg)
	l.record(msg)
}

// Close closes the log file and syslog.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
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
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verboseLocked(msg)
	l.record(msg)
}

// Record writes a line to the log file and syslog only.
func (l *Logger) Record(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record(msg)
}

// Verbose writes a line to the -v output only.
func (l *Logger) Verbose(format string, args ...any) {
	if l.opts.Verbose == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.verboseLocked(msg)
}

func (l *Logger) verboseLocked(msg string) {
	if l.opts.Verbose != nil {
		fmt.Fprintln(l.opts.Verbose, msg)
	}
}

// Debugf writes a -D line.
func (l *Logger) Debugf(format string, args ...any) {
	if l.opts.Debug == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.opts.Debug, msg)
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
	l.record(msg)
}

func (l *Logger) record(msg string) {
	if l.file == nil && l.syslog == nil {
		return
	}
	t := l.opts.Now()
	if l.file != nil {
		fmt.Fprintf(l.file, "[%04d-%02d-%02d %02d:%02d] %s\n", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), msg)
	}
	if l.syslog != nil {
		// Like syslog(3) without LOG_CONS, a line the system logger
		// does not take is dropped.
		_ = l.syslog.send(syslogLine(t, msg))
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

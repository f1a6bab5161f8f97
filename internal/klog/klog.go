// Package klog writes knockd's log lines: to standard output with -v, to
// the LogFile as "[YYYY-MM-DD HH:MM] message", and to syslog as ident
// knockd, facility user, level notice.
package klog

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

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
	// Now is the clock for LogFile time stamps; nil means time.Now.
	Now func() time.Time
}

// Logger writes log lines. Its methods are safe for concurrent use.
type Logger struct {
	opts   Options
	mu     sync.Mutex
	file   *os.File
	syslog io.WriteCloser
}

// New opens the log file (for appending) and syslog. A log file that
// cannot be opened is an error, since the administrator asked for it.
func New(opts Options) (*Logger, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Errors == nil {
		opts.Errors = os.Stderr
	}
	l := &Logger{opts: opts}
	if err := l.openFile(); err != nil {
		return nil, err
	}
	if opts.Syslog {
		// knockd carries on without a system logger (containers often
		// have none), so this is a warning, not a reason to stop.
		w, err := dialSyslog()
		if err != nil {
			fmt.Fprintf(opts.Errors, "warning: cannot connect to syslog: %v: UseSyslog lines are not logged (start the system logger, or use LogFile)\n", err)
		} else {
			l.syslog = w
		}
	}
	return l, nil
}

func (l *Logger) openFile() error {
	if l.opts.LogFile == "" {
		return nil
	}
	f, err := os.OpenFile(l.opts.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("cannot open log file: %w (fix LogFile in [options] or -g)", err)
	}
	l.file = f
	return nil
}

// Reopen closes and re-opens the log file, for log rotation (SIGHUP).
func (l *Logger) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
	return l.openFile()
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
		l.syslog.Close()
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
	if l.opts.Verbose != nil {
		fmt.Fprintln(l.opts.Verbose, msg)
	}
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
	fmt.Fprintln(l.opts.Verbose, msg)
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
	fmt.Fprintln(l.opts.Errors, msg)
	l.record(msg)
}

func (l *Logger) record(msg string) {
	if l.file != nil {
		t := l.opts.Now()
		fmt.Fprintf(l.file, "[%04d-%02d-%02d %02d:%02d] %s\n", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), msg)
	}
	if l.syslog != nil {
		l.syslog.Write([]byte(msg))
	}
}

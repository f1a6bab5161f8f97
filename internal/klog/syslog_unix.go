//go:build unix

package klog

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// sendTimeout bounds how long a line waits for a system logger that does
// not read (its queue full): the line is dropped rather than the daemon
// stalled.
const sendTimeout = time.Second

// syslogConn is the connection to the system logger, kept as glibc's
// syslog(3) keeps it: a datagram socket, or a stream socket when the
// logger only has one; after a failed send it reconnects and sends once
// more, and when that fails too it drops the line and connects afresh
// for the next one.
type syslogConn struct {
	path   string
	conn   net.Conn
	stream bool
}

func (s *syslogConn) connect() error {
	c, err := net.Dial("unixgram", s.path)
	s.stream = false
	if errors.Is(err, syscall.EPROTOTYPE) {
		c, err = net.Dial("unix", s.path)
		s.stream = true
	}
	if err != nil {
		return err
	}
	s.conn = c
	return nil
}

func (s *syslogConn) send(line []byte) error {
	if s.conn == nil {
		if err := s.connect(); err != nil {
			return err
		}
	}
	if err := s.write(line); err == nil {
		return nil
	}
	s.close()
	if err := s.connect(); err != nil {
		return err
	}
	err := s.write(line)
	if err != nil {
		s.close()
	}
	return err
}

func (s *syslogConn) write(line []byte) error {
	if s.stream {
		// On a stream, glibc ends each record with a NUL byte.
		line = append(line[:len(line):len(line)], 0)
	}
	s.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err := s.conn.Write(line)
	return err
}

func (s *syslogConn) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// childEnv marks the detached copy that -d starts: a Go program cannot
// fork, so it starts itself again in a new session.
const childEnv = "KNOCKD_DETACHED"

// daemonize starts this program again detached from the terminal and
// waits until it reports that start-up succeeded, so that a bad
// configuration still ends in a message and exit status 1.
func daemonize() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find own executable to run as a daemon: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start the daemon: %w", err)
	}
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	switch {
	case strings.HasPrefix(line, "ok"):
		cmd.Process.Release()
		return nil
	case line != "":
		cmd.Wait()
		return errors.New(strings.TrimSuffix(strings.TrimPrefix(line, "error: "), "\n"))
	default:
		cmd.Wait()
		return fmt.Errorf("the daemon exited during start-up (%v)", err)
	}
}

// readyPipe returns the function the detached copy calls once start-up
// has ended, to tell its parent how it went.
func readyPipe() func(error) {
	return func(err error) {
		f := os.NewFile(3, "ready")
		if f == nil {
			return
		}
		defer f.Close()
		if err != nil {
			fmt.Fprintf(f, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			return
		}
		fmt.Fprintln(f, "ok")
	}
}

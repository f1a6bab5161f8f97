//go:build unix

package config

import "syscall"

// oNonblock opens a file without waiting: a FIFO opens at once.
const oNonblock = syscall.O_NONBLOCK

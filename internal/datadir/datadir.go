// Package datadir owns the data directory of an embedded engine: it makes
// sure one process at a time uses it. Two processes on one JetStream store
// silently destroy each other's messages, so the second one must fail at
// once, naming the directory and the process that holds it.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned by Lock when another process holds the directory.
var ErrLocked = errors.New("datadir: in use by another process")

// lockName is the lock file inside the directory; it holds the holder's PID.
const lockName = "LOCK"

// Lock is an exclusive hold on a data directory, released by Unlock or by
// the process's exit (the kernel drops the lock, even after a SIGKILL).
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed and locks it for this process. When another
// process holds it, the error wraps ErrLocked and names that process.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("datadir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = "process " + strconv.Itoa(pid)
			}
		}
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("%w: data directory %s is used by %s; stop it or give this node another --data", ErrLocked, abs, holder)
		}
		return nil, fmt.Errorf("datadir: locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the directory. It is safe on a nil Lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}

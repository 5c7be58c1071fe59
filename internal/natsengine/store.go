package natsengine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sys/unix"
)

// ErrStoreFailed is returned by Ready while the embedded server's JetStream
// store is broken (a write failed, e.g. with "too many open files"); the
// engine restarts the store by itself once the cause is gone.
var ErrStoreFailed = errors.New("natsengine: JetStream store failed")

// storeCheckEvery is how often a failed store is retried (and how often a
// store disabled by the server itself is noticed).
const storeCheckEvery = 2 * time.Second

// storeHeadroom is how many free descriptors a restart of the store waits
// for: reopening every stream must not fail half way.
const storeHeadroom = 128

// storeFailureMarks are the parts of the embedded server's log lines that
// say a stream's store stopped writing for good: the server keeps such an
// error until JetStream restarts, so a line is the only signal there is.
// (Passing errors, a refused route or a failed read, say nothing of the
// store.)
var storeFailureMarks = []string{"critical write error", "failed to store a msg", "disabling jetstream"}

// storeHealth is whether the embedded store works.
type storeHealth struct {
	failed atomic.Pointer[string] // why, nil while healthy
	kick   chan struct{}          // wakes the supervisor at once (capacity 1)
	// streams is how many streams the store held when it failed: a restart
	// is good once they are all back (the supervisor's own).
	streams int
}

// reason says why the store failed, "" while it works.
func (h *storeHealth) reason() string {
	if r := h.failed.Load(); r != nil {
		return *r
	}
	return ""
}

// storeFailed marks the store broken and wakes the supervisor; the first
// failure of an episode is logged and counted. A failure while the store
// is already failed replaces the reason, so that a restart under way knows
// it was not the last word.
func (e *Engine) storeFailed(why string) {
	if old := e.store.failed.Swap(&why); old != nil {
		return
	}
	e.cfg.Logger.Error("JetStream store failed: the node is not ready until it is restarted", "reason", why)
	if e.cfg.OnStoreFailure != nil {
		e.cfg.OnStoreFailure()
	}
	select {
	case e.store.kick <- struct{}{}:
	default:
	}
}

// healsStore reports whether this engine watches and restarts its store:
// an embedded server that is not clustered.
func (e *Engine) healsStore() bool { return e.cfg.URL == "" && e.cfg.Cluster == nil }

// storeReady is Ready's part for the store.
func (e *Engine) storeReady() error {
	if why := e.store.reason(); why != "" {
		return fmt.Errorf("%w: %s: %w", ErrStoreFailed, why, engine.ErrUnavailable)
	}
	return nil
}

// superviseStore restarts a failed embedded store once enough descriptors
// are free, until Close. It runs only for an embedded server that is not
// clustered (a clustered server's peers hold replicas; restarting its
// JetStream alone is the cluster's business).
func (e *Engine) superviseStore() {
	defer e.wg.Done()
	tick := time.NewTicker(storeCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-e.store.kick:
		case <-tick.C:
		}
		if e.store.reason() == "" {
			if e.srv.JetStreamEnabled() {
				continue
			}
			e.storeFailed("JetStream was disabled by the server")
		}
		failure := e.store.failed.Load()
		if err := e.restartStore(); err != nil {
			e.cfg.Logger.Warn("JetStream store not restarted yet; retrying", "err", err, "every", storeCheckEvery)
			continue
		}
		if !e.store.failed.CompareAndSwap(failure, nil) {
			continue // it failed again while restarting: once more
		}
		e.cfg.Logger.Info("JetStream store restarted; the node is ready again")
		if e.cfg.OnStoreHealed != nil {
			e.cfg.OnStoreHealed()
		}
	}
}

// restartStore restarts the embedded JetStream, which reopens every stream
// from disk and clears the sticky write error, and checks that every
// stream came back.
func (e *Engine) restartStore() error {
	if free, err := freeDescriptors(); err != nil || free < storeHeadroom {
		return fmt.Errorf("waiting for %d free file descriptors (free: %d, %v)", storeHeadroom, free, err)
	}
	if e.store.streams == 0 {
		e.store.streams = e.streams() // 0 if the server already disabled it
	}
	if err := e.srv.ShutdownJetStream(); err != nil {
		return fmt.Errorf("stopping JetStream: %w", err)
	}
	o := e.sopts
	if err := e.srv.EnableJetStream(&server.JetStreamConfig{StoreDir: o.StoreDir, SyncInterval: o.SyncInterval,
		SyncAlways: o.SyncAlways, MaxMemory: o.JetStreamMaxMemory, MaxStore: o.JetStreamMaxStore, Strict: !o.NoJetStreamStrict}); err != nil {
		return fmt.Errorf("starting JetStream: %w", err)
	}
	if after := e.streams(); after < e.store.streams {
		_ = e.srv.ShutdownJetStream() // a stream did not load: try again, untouched on disk
		return fmt.Errorf("%d of %d streams loaded", after, e.store.streams)
	}
	e.store.streams = 0
	return nil
}

// streams is how many streams the embedded JetStream holds.
func (e *Engine) streams() int {
	if !e.srv.JetStreamEnabled() {
		return 0
	}
	info, err := e.srv.Jsz(&server.JSzOptions{})
	if err != nil {
		return 0
	}
	return info.Streams
}

// freeDescriptors is how many more files this process may open.
func freeDescriptors() (int, error) {
	limit, err := openFileLimit()
	if err != nil {
		return 0, err
	}
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err // EMFILE: none free
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	return limit - len(names), nil
}

// serverLog gives the embedded server's warnings and errors to Herald's
// log (its notices at debug level), and marks the store failed when a line
// says it stopped writing.
type serverLog struct{ e *Engine }

func (l serverLog) log(level slog.Level, format string, args []any) {
	msg := fmt.Sprintf(format, args...)
	if level >= slog.LevelWarn && l.e.healsStore() {
		low := strings.ToLower(msg)
		for _, m := range storeFailureMarks {
			if strings.Contains(low, m) {
				l.e.storeFailed(msg)
				break
			}
		}
	}
	if lg := l.e.cfg.Logger; lg.Enabled(context.Background(), level) {
		lg.Log(context.Background(), level, "nats: "+msg)
	}
}

// Noticef implements server.Logger.
func (l serverLog) Noticef(format string, args ...any) { l.log(slog.LevelDebug, format, args) }

// Warnf implements server.Logger.
func (l serverLog) Warnf(format string, args ...any) { l.log(slog.LevelWarn, format, args) }

// Errorf implements server.Logger.
func (l serverLog) Errorf(format string, args ...any) { l.log(slog.LevelError, format, args) }

// Fatalf implements server.Logger; the embedded server does not end the
// process.
func (l serverLog) Fatalf(format string, args ...any) { l.log(slog.LevelError, format, args) }

// Debugf implements server.Logger (not enabled).
func (l serverLog) Debugf(string, ...any) {}

// Tracef implements server.Logger (not enabled).
func (l serverLog) Tracef(string, ...any) {}

// openFileLimit is the process's open-file limit.
func openFileLimit() (int, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return int(min(r.Cur, 1<<30)), nil
}

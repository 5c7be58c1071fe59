package natsengine_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natsinbox"
	"golang.org/x/sys/unix"
)

// TestStoreFailureHeals exhausts the file descriptors of a process holding
// an embedded engine (a child process, whose open-file limit is lowered so
// that this takes a few hundred files): the store's periodic sync fails
// with "too many open files", which the server keeps as a permanent write
// error. The engine must then say it is not ready, and once the files are
// free again restart the store by itself, with every acknowledged message
// still there and new ones stored after it.
func TestStoreFailureHeals(t *testing.T) {
	if os.Getenv("HERALD_STORE_CHILD") != "" {
		storeFailureChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreFailureHeals$", "-test.v")
	cmd.Env = append(os.Environ(), "HERALD_STORE_CHILD="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func storeFailureChild(t *testing.T) {
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 512, Max: 512}); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	failed, healed := make(chan struct{}, 100), make(chan struct{}, 100)
	e := start(t, newEngine(t, natsengine.Config{DataDir: os.Getenv("HERALD_STORE_CHILD"), NodeID: "store", SyncInterval: 100 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnStoreFailure: func() { failed <- struct{}{} }, OnStoreHealed: func() { healed <- struct{}{} }}, func([][]byte) {}))
	ib, err := natsinbox.New(e, natsinbox.Config{Cap: 1 << 20, Timeout: 2 * time.Second, Exclusive: true})
	if err != nil {
		t.Fatalf("natsinbox.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := ib.Start(ctx); err != nil {
		t.Fatalf("Inbox.Start: %v", err)
	}
	var acked []uint64
	appendOne := func(i int) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		seqs, err := ib.Append(ctx, "app", []string{"u"}, "m"+strconv.Itoa(i), []byte(`"x"`), time.Hour)
		if err == nil {
			acked = append(acked, seqs[0])
		}
		return err
	}
	for i := range 20 {
		if err := appendOne(i); err != nil {
			t.Fatalf("append before: %v", err)
		}
	}
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("Ready before: %v", err)
	}

	// Take every free descriptor, writing meanwhile so that the store has
	// something to sync, until the server reports the failure.
	var hoard []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		hoard = append(hoard, f)
	}
	for i := 20; len(failed) == 0; i++ {
		if ctx.Err() != nil {
			t.Fatal("the store never reported a failure")
		}
		if appendOne(i) != nil {
			select { // the failure is on its way: wait for it, bounded by ctx
			case <-failed:
				failed <- struct{}{}
			case <-ctx.Done():
			}
		}
	}
	// While the descriptors are held, the store stays failed.
	if err := e.Ready(ctx); !errors.Is(err, natsengine.ErrStoreFailed) {
		t.Fatalf("Ready with every descriptor taken after a store failure: %v", err)
	}
	t.Logf("store failed with %d descriptors hoarded; Ready: %v", len(hoard), e.Ready(ctx))

	for _, f := range hoard {
		f.Close()
	}
	select {
	case <-healed:
	case <-ctx.Done():
		t.Fatalf("the store did not heal: %v", e.Ready(context.Background()))
	}
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("Ready after healing: %v", err)
	}
	for i := 1000; i < 1010; i++ {
		if err := appendOne(i); err != nil {
			t.Fatalf("append after healing: %v", err)
		}
	}
	page, err := ib.Read(ctx, "app", "u", 0, 1<<20)
	if err != nil {
		t.Fatalf("read after healing: %v", err)
	}
	have := map[uint64]bool{}
	for _, m := range page.Msgs {
		have[m.Seq] = true
	}
	for _, s := range acked {
		if !have[s] {
			t.Errorf("acknowledged seq %d is gone after healing (have %d messages)", s, len(page.Msgs))
		}
	}
	t.Logf("%d acknowledged messages, all readable after healing", len(acked))
}

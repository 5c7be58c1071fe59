package natsinbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// The SIGKILL durability test: a child process (this test binary, in the
// mode TestInboxKillChild selects by environment) appends and reports
// every Append that returned; the parent kills it with SIGKILL mid-stream,
// reopens the data directory and finds every reported message.
const killDirEnv = "HERALD_INBOX_KILL_DIR"

func TestInboxKillChild(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("run by TestInboxSurvivesSIGKILL")
	}
	ib := embeddedInbox(t, dir, Config{})
	ctx := context.Background()
	out := bufio.NewWriterSize(os.Stdout, 0) // unbuffered: one write per line
	for i := 0; i < 100_000; i++ {
		if i%7 == 3 {
			// A batch: several entries for some users (heads carrying
			// several messages), one each for others.
			var entries []engine.Entry
			for k := range 12 {
				id := "m" + strconv.Itoa(i) + "-" + strconv.Itoa(k)
				u := []string{"c0", "c1", "c2", "u" + strconv.Itoa((i+k)%20)}[k%4]
				entries = append(entries, engine.Entry{User: u, ID: id, Payload: []byte("payload-" + id), TTL: time.Hour})
			}
			seqs, errs := ib.AppendMany(ctx, "app", entries)
			if errs != nil {
				fmt.Fprintf(os.Stderr, "append many %d: %v\n", i, errors.Join(errs...))
				os.Exit(3)
			}
			for k, e := range entries {
				fmt.Fprintf(out, "ok %s %d %s\n", e.User, seqs[k], e.ID)
			}
			continue
		}
		users := []string{"u" + strconv.Itoa(i%20)}
		if i%10 == 0 {
			users = []string{"b0", "b1", "b2", "b3", "b4", "c1"}
		}
		id := "m" + strconv.Itoa(i)
		seqs, err := ib.Append(ctx, "app", users, id, []byte("payload-"+id), time.Hour)
		if err != nil {
			fmt.Fprintf(os.Stderr, "append %d: %v\n", i, err)
			os.Exit(3)
		}
		for k, u := range users {
			fmt.Fprintf(out, "ok %s %d %s\n", u, seqs[k], id)
		}
	}
	fmt.Fprintln(out, "done")
	select {} // wait for the kill
}

func TestInboxSurvivesSIGKILL(t *testing.T) {
	if os.Getenv(killDirEnv) != "" {
		t.Skip("child process")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*inboxWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestInboxKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type sent struct{ seq, id string }
	reported := map[string][]sent{}
	lines := 0
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "ok" {
			reported[f[1]] = append(reported[f[1]], sent{f[2], f[3]})
			lines++
		}
		if !killed && (lines >= 2000 || sc.Text() == "done") {
			// SIGKILL by PID: no deferred code, no flush, no shutdown.
			if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: killed %v, wait %v, stderr:\n%s", killed, err, stderr.String())
	}
	t.Logf("child killed after %d reported appends", lines)

	ib := embeddedInbox(t, dir, Config{})
	for user, want := range reported {
		p, err := ib.Read(ctx, "app", user, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Complete || uint64(len(p.Msgs)) != p.Latest || uint64(len(p.Msgs)) < uint64(len(want)) {
			t.Fatalf("user %s: %d messages, Latest %d, Complete %v; %d reported", user, len(p.Msgs), p.Latest, p.Complete, len(want))
		}
		for i, w := range want {
			m := p.Msgs[i]
			if strconv.FormatUint(m.Seq, 10) != w.seq || m.ID != w.id || string(m.Payload) != "payload-"+w.id {
				t.Fatalf("user %s message %d: seq %d id %q payload %q; reported seq %s id %s", user, i, m.Seq, m.ID, m.Payload, w.seq, w.id)
			}
		}
		seqs, err := ib.Append(ctx, "app", []string{user}, "after", nil, time.Hour)
		if err != nil || seqs[0] != p.Latest+1 {
			t.Fatalf("user %s: Append after restart = %v, %v; want seq %d", user, seqs, err, p.Latest+1)
		}
	}
}

// Benchmarks run through the embedded server, as a single herald node does.

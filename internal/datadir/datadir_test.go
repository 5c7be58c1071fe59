package datadir

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestSecondProcessRefused holds the lock in a child process (a real second
// process, as two herald serve would be) and checks that this one is
// refused with the directory and the child's PID, then gets it once the
// child is gone.
func TestSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	// The child is this test binary running TestHelperHold.
	child := exec.Command(os.Args[0], "-test.run=^TestHelperHold$")
	child.Env = append(os.Environ(), "DATADIR_HOLD="+dir)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	buf := make([]byte, 64)
	n, err := stdout.Read(buf) // "locked\n" once the child holds it
	if err != nil || !strings.HasPrefix(string(buf[:n]), "locked") {
		t.Fatalf("child did not lock: %q %v", buf[:n], err)
	}

	_, err = Acquire(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, "process " + strconv.Itoa(child.Process.Pid)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	stdin.Close() // the child exits without unlocking: the kernel releases it
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder exited: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// TestHelperHold is the child of TestSecondProcessRefused: it locks the
// directory, says so and waits for its stdin to close.
func TestHelperHold(t *testing.T) {
	dir := os.Getenv("DATADIR_HOLD")
	if dir == "" {
		return // only a child of TestSecondProcessRefused does anything
	}
	if _, err := Acquire(dir); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	_, _ = os.Stdin.Read(make([]byte, 1))
	os.Exit(0)
}

// TestSameProcessTwice: a second Acquire in the same process is refused
// too (flock is per open file), and Unlock lets it in.
func TestSameProcessTwice(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Unlock: %v", err)
	}
	l2.Unlock()
}

package main

// End-to-end tests of the herald binary, used the way a new user would use
// it: build it, run `herald serve` as a child process, talk to it over HTTP
// and WebSocket, and drive it with `herald push` and `herald token`.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// deadline bounds every wait in this file. It is generous because the
// machine running the tests may be busy: it is a deadline, never a timing
// assertion.
const deadline = 30 * time.Second

// heraldBin is the binary TestMain builds for every test in this file.
var heraldBin string

func TestMain(m *testing.M) { os.Exit(buildAndRun(m)) }

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "herald-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	heraldBin = filepath.Join(dir, "herald")
	// A cold build cache on a busy machine can take minutes; this bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", heraldBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "herald e2e: go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// childEnv is the test's environment without any HERALD_* variable (the
// binary reads every flag from one), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// result is how a short-lived herald command ended.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// run runs a herald command that is expected to finish by itself (push,
// token, help, version) and returns its output and exit status.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, args...) // killed when ctx ends
	cmd.Env = childEnv(env...)
	cmd.Dir = t.TempDir() // never write into the source tree
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("herald %s did not finish within %v (killed)\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), deadline, stdout.String(), stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running herald %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// proc is a long-running herald child process (herald serve) whose stderr
// is collected line by line.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string
	more  chan struct{} // signalled after each new stderr line

	done  chan struct{}    // closed once the process has exited and been waited for
	state *os.ProcessState // set before done is closed
}

// start runs herald with args. The process is killed (by its PID) and
// waited for when the test ends, if it is still running then.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startBin(t, heraldBin, env, args...)
}

// startBin is start for any binary.
func startBin(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv(env...)
	cmd.Dir = t.TempDir() // registered before the cleanup below, so removed after the kill
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", filepath.Base(bin), err)
	}
	p := &proc{t: t, name: filepath.Base(bin) + " " + strings.Join(args, " "), cmd: cmd,
		more: make(chan struct{}, 1), done: make(chan struct{})}
	go p.collect(stderr)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(deadline):
			t.Errorf("%s (pid %d) did not exit within %v of SIGKILL", p.name, cmd.Process.Pid, deadline)
		}
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", p.name, p.stderr())
		}
	})
	return p
}

// collect reads stderr to its end, then reaps the process.
func (p *proc) collect(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			p.mu.Lock()
			p.lines = append(p.lines, strings.TrimRight(line, "\r\n"))
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			break
		}
	}
	_ = p.cmd.Wait()
	p.state = p.cmd.ProcessState
	close(p.done)
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// find returns the first stderr line holding every one of parts.
func (p *proc) find(parts ...string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		ok := true
		for _, s := range parts {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return l, true
		}
	}
	return "", false
}

// waitLine waits for a stderr line holding every one of parts. It fails the
// test if the process exits first or the deadline passes.
func (p *proc) waitLine(parts ...string) string {
	p.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		if l, ok := p.find(parts...); ok {
			return l
		}
		select {
		case <-p.more:
		case <-p.done: // every line was collected before done was closed
			if l, ok := p.find(parts...); ok {
				return l
			}
			p.t.Fatalf("%s exited (%v) before logging %q; stderr:\n%s", p.name, p.state, parts, p.stderr())
		case <-timer.C:
			p.t.Fatalf("%s logged no %q within %v; stderr:\n%s", p.name, parts, deadline, p.stderr())
		}
	}
}

// waitExit waits for the process to exit and returns its exit code (-1
// when a signal ended it).
func (p *proc) waitExit() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.state.ExitCode()
	case <-time.After(deadline):
		p.t.Fatalf("%s did not exit within %v; stderr:\n%s", p.name, deadline, p.stderr())
		return 0
	}
}

var servingRE = regexp.MustCompile(`msg="herald serving" addr="?([^"\s]+)"?`)

// startServer runs herald serve and returns it with the address it bound,
// read from its "herald serving" log line.
func startServer(t *testing.T, env []string, args ...string) (*proc, string) {
	t.Helper()
	p := start(t, env, args...)
	line := p.waitLine(`msg="herald serving"`)
	m := servingRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no addr in the serving line %q", line)
	}
	host, _, err := net.SplitHostPort(m[1])
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("serving line %q: addr %q is not a 127.0.0.1 address (%v)", line, m[1], err)
	}
	return p, m[1]
}

var httpClient = &http.Client{Timeout: deadline}

// get fetches http://addr+path and returns the status and body.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

func checkHealthz(t *testing.T, addr string) {
	t.Helper()
	status, body := get(t, addr, "/healthz")
	if status != 200 {
		t.Fatalf("GET /healthz: status %d, body %s; want 200", status, body)
	}
}

// wsClient is a WebSocket client of a herald node.
type wsClient struct {
	t      *testing.T
	conn   net.Conn
	frames chan map[string]any // text frames, decoded
	closed chan int            // the server's close code; 1006 when the socket ended without a close frame
	quit   chan struct{}

	closeOnce sync.Once
}

// dialWS connects to ws://addr/v1/ws with the query (with its leading
// "?", or empty). The connection is closed when the test ends.
func dialWS(t *testing.T, addr, query string) *wsClient {
	t.Helper()
	c, err := tryDialWS(t, addr, query)
	if err != nil {
		t.Fatalf("dial /v1/ws%s: %v", query, err)
	}
	t.Cleanup(c.close)
	return c
}

// tryDialWS is dialWS for any goroutine: it reports a failed dial, and the
// caller closes the connection.
func tryDialWS(t *testing.T, addr, query string) (*wsClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	conn, br, _, err := ws.Dialer{Timeout: deadline}.Dial(ctx, "ws://"+addr+"/v1/ws"+query)
	if err != nil {
		return nil, err
	}
	var in io.Reader = conn
	if br != nil {
		// br holds frames that arrived with the handshake answer; it reads
		// on from conn once they are consumed.
		in = br
	}
	c := &wsClient{t: t, conn: conn, frames: make(chan map[string]any, 64), closed: make(chan int, 1),
		quit: make(chan struct{})}
	go c.read(in)
	return c, nil
}

// close ends the connection and its reader (once; later calls do nothing).
func (c *wsClient) close() {
	c.closeOnce.Do(func() {
		close(c.quit)
		_ = c.conn.Close()
	})
}

func (c *wsClient) read(in io.Reader) {
	code := 1006
	defer func() { c.closed <- code }()
	for {
		f, err := ws.ReadFrame(in)
		if err != nil {
			return
		}
		if f.Header.Masked {
			ws.Cipher(f.Payload, f.Header.Mask, 0)
		}
		switch f.Header.OpCode {
		case ws.OpClose:
			code = 1005 // no status in the frame
			if len(f.Payload) >= 2 {
				sc, _ := ws.ParseCloseFrameData(f.Payload)
				code = int(sc)
			}
			return
		case ws.OpText:
			var m map[string]any
			if err := json.Unmarshal(f.Payload, &m); err != nil {
				m = map[string]any{"type": "!not-json", "raw": string(f.Payload)}
			}
			select {
			case c.frames <- m:
			case <-c.quit:
				return
			}
		}
	}
}

// send writes a masked text frame.
func (c *wsClient) send(frame string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(deadline))
	if err := ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewTextFrame([]byte(frame)))); err != nil {
		c.t.Fatalf("writing %s: %v", frame, err)
	}
}

// next returns the next text frame.
func (c *wsClient) next() map[string]any {
	c.t.Helper()
	select {
	case m := <-c.frames:
		return m
	case code := <-c.closed:
		c.closed <- code
		select {
		case m := <-c.frames: // a frame that came before the close
			return m
		default:
		}
		c.t.Fatalf("the connection closed (%d) while a frame was awaited", code)
	case <-time.After(deadline):
		c.t.Fatalf("no frame within %v", deadline)
	}
	return nil
}

// welcome reads the first frame, which must be a welcome for user.
func (c *wsClient) welcome(user string) map[string]any {
	c.t.Helper()
	w := c.next()
	if w["type"] != "welcome" || w["user"] != user {
		c.t.Fatalf("first frame %v; want a welcome for user %q", w, user)
	}
	if id, _ := w["conn"].(string); !strings.HasPrefix(id, "c_") {
		c.t.Errorf("welcome %v: conn %q is not a connection id", w, w["conn"])
	}
	return w
}

// awaitPush reads frames until a push whose first message carries data,
// and returns that message.
func (c *wsClient) awaitPush(data any) map[string]any {
	c.t.Helper()
	for {
		f := c.next()
		if f["type"] != "push" {
			continue // resumed, and whatever later versions add
		}
		msgs, _ := f["msgs"].([]any)
		if len(msgs) == 0 {
			c.t.Fatalf("push frame without messages: %v", f)
		}
		msg, _ := msgs[0].(map[string]any)
		if !reflect.DeepEqual(msg["data"], data) {
			c.t.Fatalf("push frame %v; want msgs[0].data %v", f, data)
		}
		return msg
	}
}

// closeCode waits for the server to end the connection and returns the
// close code it sent.
func (c *wsClient) closeCode() int {
	c.t.Helper()
	select {
	case code := <-c.closed:
		c.closed <- code
		return code
	case <-time.After(deadline):
		c.t.Fatalf("the connection was not closed within %v", deadline)
		return 0
	}
}

// pushID checks that `herald push` succeeded and printed {"id":...}.
func pushID(t *testing.T, r result) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("herald push failed: %v", r)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("herald push printed no JSON object (%v): %v", err, r)
	}
	id, _ := out["id"].(string)
	if id == "" {
		t.Fatalf("herald push printed no id: %v", r)
	}
	return id
}

func TestServeDevPushTokenVersion(t *testing.T) {
	data := t.TempDir()
	srv, addr := startServer(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", data)
	if _, ok := srv.find("level=WARN", "DEV MODE"); !ok {
		t.Errorf("no dev-mode warning was logged; stderr:\n%s", srv.stderr())
	}
	checkHealthz(t, addr)

	// `herald version` names the version the server reports.
	v := run(t, nil, "version")
	status, body := get(t, addr, "/v1/nodes") // no key needed in dev mode
	var nodes struct {
		Nodes []struct{ Version string } `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(body), &nodes); status != 200 || err != nil || len(nodes.Nodes) != 1 {
		t.Fatalf("GET /v1/nodes: status %d, body %s (%v)", status, body, err)
	}
	if want := "herald " + nodes.Nodes[0].Version + "\n"; v.code != 0 || v.stdout != want {
		t.Errorf("herald version: %v; want stdout %q", v, want)
	}

	alice := dialWS(t, addr, "?user=alice")
	alice.welcome("alice")

	url := "http://" + addr
	id := pushID(t, run(t, nil, "push", "--url", url, "--user", "alice", "--data", `{"n":1}`))
	msg := alice.awaitPush(map[string]any{"n": 1.0})
	if msg["id"] != id {
		t.Errorf("pushed message %v; want the id %q that herald push printed", msg, id)
	}

	bad := run(t, nil, "push", "--url", url, "--user", "alice", "--data", `{"n":`)
	if bad.code == 0 || !strings.Contains(bad.stderr, "--data is not valid JSON") {
		t.Errorf("herald push with invalid JSON: %v; want a non-zero exit and %q", bad, "--data is not valid JSON")
	}

	// SIGTERM drains: clients are told to go elsewhere (1001), then the
	// process exits cleanly.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to pid %d: %v", srv.cmd.Process.Pid, err)
	}
	if code := alice.closeCode(); code != 1001 {
		t.Errorf("after SIGTERM the client got close code %d; want 1001", code)
	}
	if code := srv.waitExit(); code != 0 {
		t.Errorf("after SIGTERM herald serve exited with %d; want 0; stderr:\n%s", code, srv.stderr())
	}
}

func TestNonDevNeedsAppsAndKeys(t *testing.T) {
	t.Run("no apps", func(t *testing.T) {
		p := start(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir())
		if code := p.waitExit(); code == 0 {
			t.Fatal("herald serve without --dev and without apps exited 0")
		}
		if _, ok := p.find("apps"); !ok {
			t.Errorf("herald serve without apps did not say apps are missing; stderr:\n%s", p.stderr())
		}
		if _, ok := p.find("herald serving"); ok {
			t.Errorf("herald serve without apps started serving; stderr:\n%s", p.stderr())
		}
	})

	t.Run("dev is loopback only", func(t *testing.T) {
		p := start(t, nil, "serve", "--dev", "--addr", "0.0.0.0:0", "--data", t.TempDir())
		if code := p.waitExit(); code == 0 {
			t.Fatal("herald serve --dev --addr 0.0.0.0:0 exited 0")
		}
		if _, ok := p.find("loopback"); !ok {
			t.Errorf("herald serve --dev --addr 0.0.0.0:0 did not mention loopback; stderr:\n%s", p.stderr())
		}
	})

	t.Run("app, token and key", func(t *testing.T) {
		const (
			apiKey = "shop-api-key-0123456789"
			secret = "shop-token-secret-0123456789"
		)
		srv, addr := startServer(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
			"--app", "shop", "--api-key", apiKey, "--token-secret", secret)
		if l, ok := srv.find("DEV MODE"); ok {
			t.Errorf("a server without --dev logged %q", l)
		}
		checkHealthz(t, addr)

		tok := run(t, nil, "token", "--app", "shop", "--user", "bob", "--token-secret", secret)
		token := strings.TrimSpace(tok.stdout)
		if tok.code != 0 || strings.Count(token, ".") != 2 {
			t.Fatalf("herald token: %v; want a JWT on stdout", tok)
		}
		bob := dialWS(t, addr, "?token="+token)
		bob.welcome("bob")

		// No token: the first frame must be a valid auth frame.
		anon := dialWS(t, addr, "")
		anon.send(`{"type":"auth","token":"garbage"}`)
		if code := anon.closeCode(); code != 4001 {
			t.Errorf("after a garbage auth frame the client got close code %d; want 4001", code)
		}
		for len(anon.frames) > 0 {
			if f := <-anon.frames; f["type"] == "welcome" {
				t.Errorf("a garbage auth frame was welcomed: %v", f)
			}
		}

		url := "http://" + addr
		noKey := run(t, nil, "push", "--url", url, "--user", "bob", "--data", `{"n":2}`)
		if noKey.code == 0 || !strings.Contains(noKey.stderr, "401") {
			t.Errorf("herald push without --key: %v; want a non-zero exit reporting 401", noKey)
		}
		id := pushID(t, run(t, nil, "push", "--url", url, "--key", apiKey, "--user", "bob", "--data", `{"n":3}`))
		if msg := bob.awaitPush(map[string]any{"n": 3.0}); msg["id"] != id {
			t.Errorf("pushed message %v; want id %q", msg, id)
		}
	})

	t.Run("environment", func(t *testing.T) {
		data := t.TempDir()
		srv, addr := startServer(t, []string{"HERALD_DEV=true", "HERALD_ADDR=127.0.0.1:0", "HERALD_DATA=" + data}, "serve")
		if _, ok := srv.find("level=WARN", "DEV MODE"); !ok {
			t.Errorf("HERALD_DEV=true: no dev-mode warning; stderr:\n%s", srv.stderr())
		}
		if _, ok := srv.find(`msg="herald serving"`, data); !ok {
			t.Errorf("HERALD_DATA=%s: the serving line names another data directory; stderr:\n%s", data, srv.stderr())
		}
		checkHealthz(t, addr)
		// Dev mode really is on: no token needed.
		dialWS(t, addr, "?user=carol").welcome("carol")
	})
}

// flagDefiners are the flag.FlagSet methods that define a flag, with the
// index of the argument holding its name.
var flagDefiners = map[string]int{
	"Bool": 0, "String": 0, "Int": 0, "Int64": 0, "Uint": 0, "Uint64": 0, "Float64": 0, "Duration": 0,
	"Func": 0, "BoolFunc": 0,
	"BoolVar": 1, "StringVar": 1, "IntVar": 1, "Int64Var": 1, "UintVar": 1, "Uint64Var": 1, "Float64Var": 1,
	"DurationVar": 1, "Var": 1, "TextVar": 1,
}

// definedFlags reads this package's source and returns, for each function
// named in funcs, the names of the flags it defines on its flag set fs.
func definedFlags(t *testing.T, funcs ...string) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil || !slices.Contains(funcs, fn.Name.Name) {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if recv, ok := sel.X.(*ast.Ident); !ok || recv.Name != "fs" {
					return true
				}
				// fs.String("name", …) and fs.Func("name", …); fs.StringVar(&v, "name", …) and fs.Var(v, "name", …).
				arg, ok := flagDefiners[sel.Sel.Name]
				if !ok || len(call.Args) <= arg {
					return true
				}
				if lit, ok := call.Args[arg].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						out[fn.Name.Name] = append(out[fn.Name.Name], s)
					}
				}
				return true
			})
		}
	}
	return out
}

func TestHelpDocumentsFlags(t *testing.T) {
	commands := []struct {
		cmd, fn string
		least   []string // flags the help must show whatever the source says
	}{
		{"serve", "serve", []string{"dev", "addr", "data", "config", "nats-url", "app", "api-key", "token-secret", "admin-key", "auth-timeout"}},
		{"push", "pushCmd", []string{"url", "key", "user", "room", "data"}},
		{"token", "tokenCmd", []string{"app", "user", "token-secret", "rooms"}},
		{"drain", "drainCmd", []string{"url", "key", "drain-time", "wait"}},
		{"bench", "benchCmd", []string{"url", "conns", "workers", "key"}},
	}
	var fns []string
	for _, c := range commands {
		fns = append(fns, c.fn)
	}
	defined := definedFlags(t, fns...)
	for _, c := range commands {
		t.Run(c.cmd, func(t *testing.T) {
			for _, f := range c.least {
				if !slices.Contains(defined[c.fn], f) {
					t.Errorf("found no --%s in the source of %s (flags found: %v)", f, c.fn, defined[c.fn])
				}
			}
			r := run(t, nil, c.cmd, "--help")
			if r.code != 0 {
				t.Fatalf("herald %s --help: %v; want exit 0", c.cmd, r)
			}
			help := r.stdout + r.stderr // the flag package writes usage to stderr
			if !strings.Contains(help, "Usage: herald "+c.cmd) {
				t.Errorf("herald %s --help shows no usage line:\n%s", c.cmd, help)
			}
			for _, f := range append(slices.Clone(c.least), defined[c.fn]...) {
				// A flag's own line: "  -name type" (the flag package's form) or "  --name".
				re := regexp.MustCompile(`(?m)^\s+--?` + regexp.QuoteMeta(f) + `(\s|$)`)
				if !re.MatchString(help) {
					t.Errorf("herald %s --help does not document --%s:\n%s", c.cmd, f, help)
				}
			}
		})
	}

	t.Run("version", func(t *testing.T) {
		r := run(t, nil, "version")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "herald ") || len(strings.TrimSpace(r.stdout)) <= len("herald") {
			t.Errorf("herald version: %v; want exit 0 and \"herald <version>\"", r)
		}
	})

	t.Run("unknown command", func(t *testing.T) {
		r := run(t, nil, "frobnicate")
		if r.code != 2 {
			t.Errorf("herald frobnicate: %v; want exit 2", r)
		}
		if !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
			t.Errorf("herald frobnicate: %v; want it to name the unknown command", r)
		}
	})
}

// TestEnvironmentNeverOverridesTheCommandLine: push and token read only the
// variables they document, and a list flag on the command line replaces
// (never extends) its variable.
func TestEnvironmentNeverOverridesTheCommandLine(t *testing.T) {
	secret := "env-secret-0123456789"
	r := run(t, []string{"HERALD_TOKEN_SECRET=" + secret, "HERALD_ROOMS=from-env", "HERALD_TTL=3600"},
		"token", "--app", "shop", "--user", "bob", "--rooms", "from-flag")
	if r.code != 0 {
		t.Fatalf("token: %v", r)
	}
	parts := strings.Split(strings.TrimSpace(r.stdout), ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", r.stdout)
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(claims), `"rooms":["from-flag"]`) {
		t.Fatalf("claims %s: --rooms should replace HERALD_ROOMS, which token does not read", claims)
	}
	// HERALD_DATA is serve's data directory, never push's payload.
	r = run(t, []string{"HERALD_DATA=/var/lib/herald", "HERALD_URL=http://127.0.0.1:1"}, "push", "--user", "a", "--data", `{"n":1}`)
	if r.code == 0 || strings.Contains(r.stderr, "not valid JSON") {
		t.Fatalf("push with HERALD_DATA set: %v", r)
	}
}

// TestMaxConnsPerUserFlag: --max-conns-per-user sets the per-user limit:
// the second connection of a user is closed with 4009, another user's is
// welcomed.
func TestMaxConnsPerUserFlag(t *testing.T) {
	_, addr := startServer(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--max-conns-per-user", "1")
	dialWS(t, addr, "?user=alice").welcome("alice")
	if code := dialWS(t, addr, "?user=alice").closeCode(); code != 4009 {
		t.Fatalf("second connection of alice closed with %d, want 4009", code)
	}
	dialWS(t, addr, "?user=bob").welcome("bob")
}

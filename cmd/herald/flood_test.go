package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/auth"
)

const (
	floodKey    = "flood-api-key-0123456789"
	floodSecret = "flood-token-secret-0123456789"
)

// TestKeylessFloodCannotBreakStorage is the attack of issue #10 on a
// process with 1,024 open files instead of 20,000, so it takes seconds:
// key-less clients from several addresses open connections that announce a
// request body and never send it, and idle ones that send nothing, and
// reopen whatever the server closes. Before the connection caps they took
// every descriptor and the embedded store's next sync (every 100 ms here)
// failed with "too many open files", breaking stored pushes until a
// restart. Now the listener stops below the limit, the store keeps its
// reserve: every offline push made during the flood (over a connection the
// backend already had) is stored with its status record, and after the
// flood the node is ready, stores and replays exactly what it acknowledged.
func TestKeylessFloodCannotBreakStorage(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "herald.yaml")
	yaml := fmt.Sprintf("sync_interval: 100ms\nlimits:\n  inbox_cap: 100000\napps:\n  - name: shop\n    api_keys: [%q]\n    token_secret: %q\n", floodKey, floodSecret)
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBin(t, "/bin/sh", nil, "-c", "ulimit -n 1024 && exec "+heraldBin+
		" serve --config "+conf+os.Getenv("FLOOD_EXTRA")+" --addr 127.0.0.1:0 --data "+filepath.Join(dir, "data"))
	line := p.waitLine(`msg="herald serving"`)
	addr := servingRE.FindStringSubmatch(line)[1]
	maxConns := regexp.MustCompile(`max_conns=(\d+)`).FindStringSubmatch(line)
	if maxConns == nil || maxConns[1] == "0" || len(maxConns[1]) > 3 && os.Getenv("FLOOD_EXTRA") == "" {
		t.Fatalf("the serving line gives no cap below 1,024: %q", line)
	}
	t.Logf("serving: %s", line)

	// The backend's connections exist before the flood.
	backend := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: deadline}
	var acked []string
	push := func(data string) error {
		body := fmt.Sprintf(`{"to":{"users":["victim"]},"data":%q,"offline":true}`, data)
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/push", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+floodKey)
		resp, err := backend.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct{ ID string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("push %s: status %d, %v", data, resp.StatusCode, err)
		}
		acked = append(acked, out.ID)
		return nil
	}
	apiGet := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+floodKey)
		resp, err := backend.Do(req)
		if err != nil {
			t.Fatalf("GET %s on the backend's connection: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if err := push("before"); err != nil {
		t.Fatal(err)
	}

	f := startFlood(t, addr, 4, 400)
	capN, _ := strconv.Atoi(maxConns[1])
	for giveUp := time.Now().Add(deadline); f.opened.Load() < int64(capN)+2000; {
		if time.Now().After(giveUp) {
			t.Fatalf("the flood opened %d connections in %v", f.opened.Load(), deadline)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
	// The flood is at the cap. Keep it there over many store syncs (30 or
	// more) while the backend pushes.
	start := time.Now()
	for i := 0; i < 100 || time.Since(start) < 30*100*time.Millisecond; i++ {
		if err := push("during " + strconv.Itoa(i)); err != nil {
			t.Fatalf("offline push during the flood: %v", err)
		}
	}
	held, opened := f.stop()
	t.Logf("the flood held %d connections at the end (%d opened in all); the cap is %s", held, opened, maxConns[1])
	if held > 1024 {
		t.Fatalf("the flood held %d connections, over the open-file limit", held)
	}
	for _, id := range acked {
		if status, body := apiGet("/v1/messages/" + id); status != 200 {
			t.Fatalf("status of acknowledged %s: %d %s", id, status, body)
		}
	}

	// After the flood: ready, new connections, new pushes, and the exact replay.
	waitReady(t, addr)
	_, m := get(t, addr, "/metrics")
	if r := regexp.MustCompile(`herald_listener_refused_total\{reason="global"\} (\d+)`).FindStringSubmatch(m); r == nil || r[1] == "0" {
		t.Fatalf("the flood never reached the global cap (%v)", r)
	}
	if err := push("after"); err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Mint("shop", []byte(floodSecret), auth.Claims{App: "shop", User: "victim", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got := readInboxWith(t, addr, "victim", "?token="+tok+"&since=0"); !slices.Equal(got, acked) {
		t.Fatalf("victim's inbox: %d messages, acknowledged %d", len(got), len(acked))
	}
	if l, ok := p.find("JetStream store failed"); ok {
		t.Errorf("the store failed during the flood: %s", l)
	}
}

// waitReady polls /readyz on new connections until it answers 200.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	giveUp := time.Now().Add(deadline)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(giveUp) {
			t.Fatalf("/readyz not 200 within %v after the flood: %v", deadline, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

// flood is a key-less attacker: per source address, a goroutine that keeps
// up to perSource connections open, half of them announcing a body they
// never send, half sending nothing, reopening what the server closes.
type flood struct {
	quit   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	opened atomic.Int64
}

func startFlood(t *testing.T, addr string, sources, perSource int) *flood {
	f := &flood{quit: make(chan struct{}), conns: map[net.Conn]bool{}}
	for s := range sources {
		f.wg.Add(1)
		go f.attack(addr, fmt.Sprintf("127.0.%d.%d", 40+s, 2+s), perSource)
	}
	t.Cleanup(func() { f.stop() })
	return f
}

func (f *flood) attack(addr, source string, perSource int) {
	defer f.wg.Done()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: time.Second}
	slow := []byte("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	live := make(chan struct{}, perSource)
	for i := 0; ; i++ {
		select {
		case <-f.quit:
			return
		case live <- struct{}{}:
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			<-live
			continue // refused or reset: try again
		}
		f.opened.Add(1)
		f.mu.Lock()
		f.conns[c] = true
		f.mu.Unlock()
		if i%2 == 0 {
			_, _ = c.Write(slow)
		}
		go func() { // holds c until the server closes it (or the flood stops)
			_, _ = io.Copy(io.Discard, c)
			f.mu.Lock()
			delete(f.conns, c)
			f.mu.Unlock()
			c.Close()
			<-live
		}()
	}
}

// stop ends the flood, closing every connection; it returns how many were
// open and how many were opened in all.
func (f *flood) stop() (held int, opened int) {
	select {
	case <-f.quit:
		return 0, int(f.opened.Load())
	default:
	}
	f.mu.Lock()
	held = len(f.conns)
	f.mu.Unlock()
	close(f.quit)
	f.wg.Wait()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	return held, int(f.opened.Load())
}

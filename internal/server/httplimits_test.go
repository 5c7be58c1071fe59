package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/config"
)

// batchBody returns a valid batch body of about size bytes.
func batchBody(size int) []byte {
	var items []map[string]any
	for n := 0; n < size; n += 50_000 {
		items = append(items, map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": strings.Repeat("x", 50_000)})
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	return b
}

// metricValue returns the value of a metric without labels (0 if absent).
func metricValue(t *testing.T, text, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rawRequest writes an HTTP/1.1 request head on a fresh TCP connection.
func (n *node) rawRequest(head string) net.Conn {
	n.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, head); err != nil {
		n.t.Fatal(err)
	}
	return c
}

// holdBatch sends the head and the first 100 KiB of a batch request and
// returns its connection once the node counts the body in flight.
func (n *node) holdBatch(body []byte) net.Conn {
	n.t.Helper()
	held := n.rawRequest(fmt.Sprintf("POST /v1/push/batch HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)))
	if _, err := held.Write(body[:100<<10]); err != nil {
		n.t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for metricValue(n.t, n.metrics(), "herald_api_body_in_flight_bytes") < float64(len(body)-(16<<10)) {
		if time.Now().After(deadline) {
			n.t.Fatal("the held body was not counted in flight")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
	return held
}

// TestBatchBodiesShareAMemoryBudget holds one large batch body half sent:
// a second one that does not fit beside it in max_body_bytes_in_flight is
// refused with 503 unavailable, and goes through once the first is done. A
// batch body larger than the whole budget is refused with 413.
func TestBatchBodiesShareAMemoryBudget(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.MaxBodyBytesInFlight = 1 << 20 })
	body := batchBody(600 << 10)

	// Refused on its Content-Length: the body is never sent (a client
	// still writing a refused body may see a reset instead of the answer).
	big := n.rawRequest(fmt.Sprintf("POST /v1/push/batch HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 1100<<10))
	if resp, err := http.ReadResponse(bufio.NewReader(big), nil); err != nil || resp.StatusCode != 413 {
		t.Fatalf("batch over the budget: %v %v", resp, err)
	}

	held := n.holdBatch(body)

	// The second sends 32 KiB of its body and then reads: a client still
	// writing a refused body may see its connection reset before it reads
	// the answer (the server does not read what it refused).
	second := n.rawRequest(fmt.Sprintf("POST /v1/push/batch HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)))
	if _, err := second.Write(body[:32<<10]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(raw), `"unavailable"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second batch beside a held one: %d %s %v", resp.StatusCode, raw, resp.Header)
	}
	if v := metricValue(t, n.metrics(), "herald_api_body_budget_refused_total"); v != 1 {
		t.Fatalf("herald_api_body_budget_refused_total = %v", v)
	}

	if _, err := held.Write(body[100<<10:]); err != nil {
		t.Fatal(err)
	}
	hr, err := http.ReadResponse(bufio.NewReader(held), nil)
	if err != nil || hr.StatusCode != 200 {
		t.Fatalf("held batch: %v %v", hr, err)
	}
	if status, out := n.call("POST", "/v1/push/batch", "", body); status != 200 {
		t.Fatalf("batch after the first finished: %d %v", status, out)
	}
	if v := metricValue(t, n.metrics(), "herald_api_body_in_flight_bytes"); v != 0 {
		t.Fatalf("%v body bytes still counted in flight", v)
	}
}

// TestChunkedRequestClosesTheConnection sends a request with both
// Content-Length and Transfer-Encoding (RFC 9112 section 6.1): it is
// answered, then the connection is closed, so nothing smuggled after it is
// read as a request.
func TestChunkedRequestClosesTheConnection(t *testing.T) {
	n := startNode(t, nil)
	push := `{"to":{"users":["alice"]},"data":1}`
	smuggled := "GET /v1/stats HTTP/1.1\r\nHost: h\r\n\r\n"
	c := n.rawRequest("POST /v1/push HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n" +
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(push), push) + smuggled)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !resp.Close {
		t.Fatalf("answer %d without Connection: close", resp.StatusCode)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Fatalf("after the answer: %q, %v (want the connection closed)", rest, err)
	}
	if v := metricValue(t, n.metrics(), "herald_http_transfer_encoding_closes_total"); v != 1 {
		t.Fatalf("herald_http_transfer_encoding_closes_total = %v", v)
	}
}

// h2cConn opens an HTTP/2 connection with prior knowledge and returns its
// framer, after the settings exchange was sent.
func (n *node) h2cConn() (net.Conn, *http2.Framer) {
	n.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		n.t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		n.t.Fatal(err)
	}
	return c, fr
}

// TestH2RapidResetClosesTheConnection opens streams and resets each at
// once, as the HTTP/2 rapid reset attack does: the node closes the
// connection long before 100,000 of them.
func TestH2RapidResetClosesTheConnection(t *testing.T) {
	n := startNode(t, nil)
	c, fr := n.h2cConn()
	closed := make(chan struct{})
	pongs := make(chan struct{}, 1)
	go func() {
		defer close(closed)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				return
			case *http2.PingFrame:
				if f.IsAck() {
					pongs <- struct{}{}
				}
			}
		}
	}()
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "h"}, {":path", "/v1/push"}, {"content-type", "application/json"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hbuf.Bytes()
	// Pairs go out in rounds of 100, each ended by a PING whose answer
	// says the node has read the round: the count below is what the node
	// took, not what the socket buffers held.
	const pairs, round = 100_000, 100
	sent := 0
	id := uint32(1)
	for sent < pairs {
		var err error
		for range round {
			if err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err == nil {
				err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
			if err != nil {
				break
			}
			id += 2
		}
		if err == nil {
			err = fr.WritePing(false, [8]byte{})
		}
		if err != nil {
			break
		}
		select {
		case <-pongs:
			sent += round
			continue
		case <-closed:
		case <-time.After(wait):
			t.Fatalf("no answer to a PING after %d pairs", sent)
		}
		break
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	<-closed
	if sent >= pairs {
		t.Fatalf("%d HEADERS+RST_STREAM pairs and the connection is still open", sent)
	}
	if sent > pairs/4 {
		t.Fatalf("the connection was closed only after %d pairs", sent)
	}
	t.Logf("closed after %d pairs", sent)
	// The guard counts the flood once it has closed the connection.
	waitFor(t, func() bool { return metricValue(t, n.metrics(), "herald_http_h2_reset_floods_total") == 1 })
}

// TestH2ManyRequestsOnOneConnectionAreServed makes thousands of requests,
// many at once, on one HTTP/2 connection: the reset limit never touches a
// client that does not cancel.
func TestH2ManyRequestsOnOneConnectionAreServed(t *testing.T) {
	n := startNode(t, nil)
	var dials atomic.Int32
	tr := &http.Transport{Protocols: new(http.Protocols), DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	tr.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	// One request first, so that all the others share its connection.
	if resp, err := client.Get(n.base + "/healthz"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	const total, workers = 3000, 50
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				body := fmt.Sprintf(`{"to":{"users":["u%d"]},"data":%d}`, i%7, i)
				resp, err := client.Post(n.base+"/v1/push", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("push %d: status %d", i, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	if d := dials.Load(); d != 1 || failed.Load() > 0 {
		t.Fatalf("%d connections dialled, %d failures", d, failed.Load())
	}
}

// TestGRPCBatchesShareTheBodyBudget checks the budget and the batch cap
// over gRPC and Connect: a batch that does not fit beside a held HTTP one
// gets UNAVAILABLE with the "unavailable" ErrorInfo; one over the whole
// budget RESOURCE_EXHAUSTED.
func TestGRPCBatchesShareTheBodyBudget(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.MaxBodyBytesInFlight = 1 << 20 })
	batch := func(size int) *heraldv1.PushBatchRequest {
		var items []*heraldv1.PushRequest
		for k := 0; k < size; k += 50_000 {
			items = append(items, &heraldv1.PushRequest{To: &heraldv1.Target{Users: []string{"alice"}}, Data: `"` + strings.Repeat("x", 50_000) + `"`})
		}
		return &heraldv1.PushBatchRequest{Items: items}
	}
	clients := n.rpcClients()
	for _, c := range clients {
		_, err := call[heraldv1.PushBatchRequest, heraldv1.PushBatchResponse](c, "", heraldv1connect.HeraldServicePushBatchProcedure, batch(1100<<10))
		if code, _ := errCodes(t, err); code != connect.CodeResourceExhausted {
			t.Errorf("%s: batch over the budget: %v", c.name, err)
		}
	}
	body := batchBody(600 << 10)
	held := n.holdBatch(body)
	for _, c := range clients {
		_, err := call[heraldv1.PushBatchRequest, heraldv1.PushBatchResponse](c, "", heraldv1connect.HeraldServicePushBatchProcedure, batch(600<<10))
		if code, info := errCodes(t, err); code != connect.CodeUnavailable || info != "unavailable" {
			t.Errorf("%s: batch beside a held one: %v %v %q", c.name, err, code, info)
		}
	}
	if _, err := held.Write(body[100<<10:]); err != nil {
		t.Fatal(err)
	}
	if hr, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil || hr.StatusCode != 200 {
		t.Fatalf("held batch: %v %v", hr, err)
	}
	for _, c := range clients {
		if _, err := call[heraldv1.PushBatchRequest, heraldv1.PushBatchResponse](c, "", heraldv1connect.HeraldServicePushBatchProcedure, batch(600<<10)); err != nil {
			t.Errorf("%s: batch once the budget is free: %v", c.name, err)
		}
	}
}

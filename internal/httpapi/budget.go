package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/push"
)

// ErrBodyBudget is the error a request body's Read returns when the node's
// budget of body bytes in flight is spent.
var ErrBodyBudget = errors.New("httpapi: request body budget spent")

const (
	// freeBody is how many bytes of each body are read without counting
	// them against the budget: most pushes are smaller, and they then never
	// touch the budget's lock.
	freeBody = 16 << 10
	// budgetWait is how long one request waits in all for budget to free up
	// before it is refused.
	budgetWait = time.Second
)

// BodyBudget bounds the bytes of request bodies (HTTP and gRPC) that the
// node holds at once. A body's first freeBody bytes are free; beyond them
// every byte read counts until the request's handler returns. A declared
// Content-Length is taken at once when the body grows past the free part,
// so two large requests never each hold half of the budget waiting for the
// other; a body of unknown length (chunked, HTTP/2 without a length) takes
// its bytes as they are read. A request that cannot get its bytes within a
// second fails its read with ErrBodyBudget: 503 unavailable over HTTP,
// UNAVAILABLE over gRPC.
type BodyBudget struct {
	max     int64
	metrics *metrics.Metrics

	mu    sync.Mutex
	used  int64
	freed chan struct{} // closed (and replaced) when bytes are released
}

// NewBodyBudget returns a budget of max bytes.
func NewBodyBudget(max int64, m *metrics.Metrics) (*BodyBudget, error) {
	if max < freeBody || m == nil {
		return nil, errors.New("httpapi: body budget needs metrics and at least 16 KiB")
	}
	return &BodyBudget{max: max, metrics: m, freed: make(chan struct{})}, nil
}

// Wrap returns h with its request bodies counted against the budget.
func (b *BodyBudget) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || (r.ContentLength >= 0 && r.ContentLength <= freeBody) {
			h.ServeHTTP(w, r)
			return
		}
		br := &budgetReader{budget: b, body: r.Body, ctx: r.Context(), declared: r.ContentLength, w: w, http1: r.ProtoMajor == 1}
		r.Body = br
		defer br.release()
		h.ServeHTTP(w, r)
	})
}

// take reserves n bytes, waiting until deadline (or ctx's end) for others
// to release them.
func (b *BodyBudget) take(ctx context.Context, n int64, deadline *time.Time) bool {
	for {
		b.mu.Lock()
		if b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			b.metrics.BodyBytes(n)
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		if deadline.IsZero() {
			*deadline = time.Now().Add(budgetWait)
		}
		wait := time.Until(*deadline)
		if wait <= 0 {
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-freed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return false
		}
	}
}

func (b *BodyBudget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
	b.metrics.BodyBytes(-n)
}

// budgetReader counts one request body; it is read by the handler's
// goroutine only.
type budgetReader struct {
	budget   *BodyBudget
	body     io.ReadCloser
	ctx      context.Context
	declared int64 // Content-Length, or -1
	w        http.ResponseWriter
	read     int64 // bytes read so far
	held     int64 // bytes taken from the budget
	deadline time.Time
	refused  bool
	http1    bool // the connection is this request's alone
}

func (br *budgetReader) Read(p []byte) (int, error) {
	if br.refused {
		return 0, br.refusal()
	}
	n, err := br.body.Read(p)
	br.read += int64(n)
	// One request holds at most the whole budget: every handler's own
	// limit is below it, so it reads at most one byte more and refuses the
	// body.
	if need := min(br.read-freeBody, br.budget.max) - br.held; need > 0 {
		if br.declared > 0 {
			// The whole declared rest at once.
			need = max(need, min(br.declared-freeBody, br.budget.max)-br.held)
		}
		if !br.budget.take(br.ctx, need, &br.deadline) {
			br.refused = true
			br.budget.metrics.BodyRefused()
			// The rest of the body is not read: an HTTP/1 connection is
			// not reused. (On HTTP/2 only this stream ends: Connection:
			// close there would shut every call on the connection.)
			br.w.Header().Set("Retry-After", "1")
			if br.http1 {
				br.w.Header().Set("Connection", "close")
			}
			return 0, br.refusal()
		}
		br.held += need
	}
	return n, err
}

// refusal is ErrBodyBudget as a gRPC status that also reads as the API's
// unavailable error.
func (br *budgetReader) refusal() error {
	const msg = "the node is reading too many request bodies at once; retry"
	ce := connect.NewError(apierr.Of(push.CodeUnavailable).GRPC, &push.Error{Code: push.CodeUnavailable, Message: msg, Err: ErrBodyBudget})
	if d, err := connect.NewErrorDetail(&heraldv1.ErrorInfo{Code: push.CodeUnavailable, Message: msg}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

func (br *budgetReader) Close() error { return br.body.Close() }

func (br *budgetReader) release() { br.budget.give(br.held) }

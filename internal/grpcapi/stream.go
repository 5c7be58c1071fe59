package grpcapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/push"
)

// Stream windows: how many received pushes may wait for their turn, and
// how many are taken in one go.
const (
	streamQueue  = 1024
	streamWindow = 256
)

// PushStream takes a stream of pushes and answers each, in order, with its
// id or its error; the stream goes on after a failed push. It is a
// pipeline of three goroutines, so that the client never waits for an
// answer before sending on:
//
//   - this one receives pushes into a queue of streamQueue (when it is
//     full, HTTP/2 flow control holds the client back);
//   - a worker takes whatever is queued, up to streamWindow, and handles it
//     as one batch (push.Service.PushMany: the same validation,
//     idempotency and storage as Push; pushes to one user keep their
//     order; a window of offline pushes is stored in one engine round);
//   - a sender answers each push and flushes once per run of answers, not
//     once per answer.
//
// Each window gets the engine deadline of its own.
func (a *API) PushStream(ctx context.Context, st *connect.BidiStream[heraldv1.PushStreamRequest, heraldv1.PushStreamResponse]) error {
	start := time.Now()
	held, _ := ctx.Value(heldKey{}).(*heldFlusher)
	queue := make(chan streamItem, streamQueue)
	answers := make(chan []*heraldv1.PushStreamResponse, 4)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(answers)
		a.streamWork(ctx, queue, answers)
	}()
	var sendErr error
	go func() {
		defer wg.Done()
		sendErr = streamSend(st, held, answers)
	}()
	caller := callerOf(ctx)
	var slab []push.Request // requests are allocated streamWindow at a time
	var recvErr error
	for i := uint64(0); ; i++ {
		in, err := st.Receive()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err // the client went away, or sent a message over the limit
			}
			break
		}
		item := streamItem{index: i}
		if m := in.GetPush(); m == nil {
			item.err = push.Errorf(push.CodeInvalidArgument, "a stream message carries no push")
		} else {
			if len(slab) == 0 {
				slab = make([]push.Request, streamWindow)
			}
			item.req, slab = &slab[0], slab[1:]
			*item.req, item.err = a.request(caller, m)
		}
		queue <- item
	}
	close(queue)
	wg.Wait()
	if err := errors.Join(recvErr, sendErr); err != nil {
		return err
	}
	a.metrics.RPCRequest("ok", time.Since(start).Seconds())
	return nil
}

// streamItem is one received push: its request, or why it has none.
type streamItem struct {
	index uint64
	req   *push.Request
	err   error
}

// streamWork handles the queue window by window until it is closed.
func (a *API) streamWork(ctx context.Context, queue <-chan streamItem, answers chan<- []*heraldv1.PushStreamResponse) {
	window := make([]streamItem, 0, streamWindow)
	for first := range queue {
		window = append(window[:0], first)
	more:
		for len(window) < streamWindow {
			select {
			case it, ok := <-queue:
				if !ok {
					break more
				}
				window = append(window, it)
			default:
				break more
			}
		}
		out := a.pushWindow(ctx, window)
		for i := range window { // what was pushed is not kept while the stream idles
			if window[i].req != nil {
				*window[i].req = push.Request{}
			}
		}
		clear(window)
		answers <- out
	}
}

// pushWindow pushes one window and returns its answers in order. The
// answers of a window are allocated together, a few slices per window
// rather than a few messages per push.
func (a *API) pushWindow(ctx context.Context, window []streamItem) []*heraldv1.PushStreamResponse {
	n := len(window)
	reqs := make([]*push.Request, n)
	errs := make([]error, n)
	for i := range window {
		reqs[i], errs[i] = window[i].req, window[i].err
	}
	ctx, cancel := a.engineCtx(ctx)
	ids := make([]string, n)
	if n == 1 && errs[0] == nil {
		ids[0], errs[0] = a.svc.Push(ctx, reqs[0])
	} else {
		ids = a.svc.PushMany(ctx, reqs, errs)
	}
	cancel()
	out := make([]*heraldv1.PushStreamResponse, n)
	msgs := make([]heraldv1.PushStreamResponse, n)
	results := make([]heraldv1.PushResult, n)
	idResults := make([]heraldv1.PushResult_Id, n)
	for i := range window {
		if errs[i] != nil {
			results[i].Result = &heraldv1.PushResult_Error{Error: errorInfo(errs[i])}
		} else {
			idResults[i].Id = ids[i]
			results[i].Result = &idResults[i]
		}
		msgs[i].Index, msgs[i].Result = window[i].index, &results[i]
		out[i] = &msgs[i]
	}
	return out
}

// streamSend writes the answers, flushing when no more are ready. After a
// failed send it only drains the channel, so the worker never blocks.
func streamSend(st *connect.BidiStream[heraldv1.PushStreamRequest, heraldv1.PushStreamResponse], held *heldFlusher, answers <-chan []*heraldv1.PushStreamResponse) error {
	var err error
	for batch := range answers {
		for _, m := range batch {
			if err == nil {
				err = st.Send(m)
			}
		}
		if err == nil && held != nil && len(answers) == 0 {
			held.flush()
		}
	}
	return err
}

// heldKey carries a PushStream's heldFlusher in its request's context.
type heldKey struct{}

// heldFlusher is the response writer of a PushStream. Connect flushes after
// every message, one HTTP/2 frame write each; this one ignores those
// flushes and flushes when the stream's sender has nothing more ready, so
// a run of answers goes out together (a full buffer goes out anyway).
type heldFlusher struct{ http.ResponseWriter }

// Flush is connect's flush after each message: held.
func (h *heldFlusher) Flush() {}

func (h *heldFlusher) flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (h *heldFlusher) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// holdFlushes gives PushStream calls a heldFlusher.
func holdFlushes(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == heraldv1connect.HeraldServicePushStreamProcedure {
			hf := &heldFlusher{ResponseWriter: w}
			r = r.WithContext(context.WithValue(r.Context(), heldKey{}, hf))
			w = hf
		}
		h.ServeHTTP(w, r)
	})
}

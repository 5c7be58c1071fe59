package herald

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a Herald node's server API. It is safe for concurrent use.
type Client struct {
	t   transport
	cfg clientConfig
}

// Option configures a Client.
type Option func(*clientConfig)

type clientConfig struct {
	http     *http.Client
	grpc     bool
	app      string
	autoID   bool
	attempts int
	backoff  backoff
}

// defaultTimeout bounds one attempt of a call by default.
const defaultTimeout = 30 * time.Second

// WithHTTPClient makes the Client send its requests with hc (by default
// an http.Client with a 30-second timeout per attempt).
func WithHTTPClient(hc *http.Client) Option { return func(c *clientConfig) { c.http = hc } }

// WithGRPC makes the Client call the gRPC API (the HeraldService of
// api/herald/v1, served on the same address) rather than HTTP/JSON: HTTP/2
// over TLS for an https:// base URL, cleartext HTTP/2 for http://. The
// operations, answers, errors and retries are the same. With
// WithHTTPClient, that client must speak HTTP/2 to the node.
func WithGRPC() Option { return func(c *clientConfig) { c.grpc = true } }

// WithApp names the app every call acts on, for admin keys (an app key
// acts on its own app; naming another is refused with 403). A push's own
// PushRequest.App wins over it.
func WithApp(app string) Option { return func(c *clientConfig) { c.app = app } }

// WithAutoID sets whether a push without an ID gets one from the Client
// (default true). The id is the push's idempotency key: a push retried
// after a lost answer is then accepted once. Without it such pushes are
// never retried, and the server remembers no id for them.
func WithAutoID(on bool) Option { return func(c *clientConfig) { c.autoID = on } }

// WithMaxAttempts bounds how often an idempotent call is tried (default 4;
// 1 turns retries off). The call's context bounds it too.
func WithMaxAttempts(n int) Option { return func(c *clientConfig) { c.attempts = n } }

// WithRetryBackoff sets the exponential backoff between attempts: the wait
// before retry n is random in [0, min(max, base·2ⁿ)] (default 100 ms, 2 s).
func WithRetryBackoff(base, max time.Duration) Option {
	return func(c *clientConfig) { c.backoff = backoff{base, max} }
}

// NewClient returns a Client of the node at baseURL (such as
// "http://127.0.0.1:8080") with apiKey ("" for a --dev node). It checks
// its arguments and does no I/O.
func NewClient(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("herald: base URL %q is not an http(s)://host URL", baseURL)
	}
	cfg := clientConfig{autoID: true, attempts: 4, backoff: backoff{100 * time.Millisecond, 2 * time.Second}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.attempts < 1 {
		return nil, errors.New("herald: WithMaxAttempts needs at least 1")
	}
	base := strings.TrimRight(baseURL, "/")
	if cfg.grpc {
		return &Client{t: newGRPCTransport(cfg.http, base, apiKey), cfg: cfg}, nil
	}
	if cfg.http == nil {
		cfg.http = &http.Client{Timeout: defaultTimeout}
	}
	return &Client{t: &httpTransport{hc: cfg.http, base: base, key: apiKey}, cfg: cfg}, nil
}

// retry runs one operation, attempt, retrying an idempotent one on network
// errors and unavailable answers until it succeeds, attempts run out or
// ctx ends. On failure it returns T's zero value.
func retry[T any](ctx context.Context, c *Client, idempotent bool, attempt func() (T, error)) (T, error) {
	for n := 0; ; n++ {
		out, err := attempt()
		if err == nil {
			return out, nil
		}
		var zero T
		if !idempotent || n+1 >= c.cfg.attempts || !retryable(ctx, err) {
			return zero, err
		}
		if cerr := sleep(ctx, c.cfg.backoff.delay(n)); cerr != nil {
			return zero, fmt.Errorf("%w (giving up: %w)", err, cerr)
		}
	}
}

// do is retry for an operation without an answer.
func (c *Client) do(ctx context.Context, idempotent bool, attempt func() error) error {
	_, err := retry(ctx, c, idempotent, func() (struct{}, error) { return struct{}{}, attempt() })
	return err
}

// retryable reports whether a failed attempt may succeed when tried again:
// a network error, or the server (or a proxy before it) unavailable.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	}
	return true
}

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newID returns a fresh push id in the server's own style: "m_" and a
// time-ordered random string (48 bits of milliseconds, 80 random bits).
func newID() string {
	var b [16]byte
	ms := time.Now().UnixMilli()
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:])
	return "m_" + idEncoding.EncodeToString(b[:])
}

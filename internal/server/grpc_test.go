package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
)

// The gRPC API is exercised through two independent clients:
// google.golang.org/grpc over HTTP/2 cleartext, and a Connect client
// speaking the Connect protocol with JSON over HTTP/1.1. rpcClient puts
// both behind one call shape, so every case runs on both.

// rpcClient is one client of a node's gRPC API.
type rpcClient struct {
	name string
	cc   *grpc.ClientConn // grpc-go; nil for the Connect client
	base string           // the node's base URL, for the Connect client
}

// rpcClients returns a grpc-go client and a Connect JSON client of n.
func (n *node) rpcClients() []rpcClient {
	n.t.Helper()
	cc, err := grpc.NewClient(strings.TrimPrefix(n.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { cc.Close() })
	return []rpcClient{{name: "grpc", cc: cc}, {name: "connect", base: n.base}}
}

// call makes a unary call of procedure with an API key ("" sends none).
func call[Req, Resp any](c rpcClient, key, procedure string, req *Req) (*Resp, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if c.cc != nil {
		if key != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
		}
		resp := new(Resp)
		return resp, c.cc.Invoke(ctx, procedure, req, resp)
	}
	r := connect.NewRequest(req)
	if key != "" {
		r.Header().Set("Authorization", "Bearer "+key)
	}
	resp, err := connect.NewClient[Req, Resp](http.DefaultClient, c.base+procedure, connect.WithProtoJSON()).CallUnary(ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// errCodes returns the gRPC status code of err and the stable code of its
// ErrorInfo detail ("" when it has none).
func errCodes(t *testing.T, err error) (connect.Code, string) {
	t.Helper()
	if err == nil {
		t.Fatal("call succeeded, want an error")
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Details() {
			if v, err := d.Value(); err == nil {
				if info, ok := v.(*heraldv1.ErrorInfo); ok {
					return ce.Code(), info.Code
				}
			}
		}
		return ce.Code(), ""
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*heraldv1.ErrorInfo); ok {
			return connect.Code(st.Code()), info.Code
		}
	}
	return connect.Code(st.Code()), ""
}

// expectMsgs returns the next n pushed messages, however the server groups
// them into push frames.
func (c *client) expectMsgs(n int) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	for len(out) < n {
		for _, m := range c.expect("push")["msgs"].([]any) {
			out = append(out, m.(map[string]any))
		}
	}
	if len(out) > n {
		c.t.Fatalf("got %d messages, want %d: %v", len(out), n, out)
	}
	return out
}

// sameMessage fails unless got and want are the same message frame entry
// but for the id (got's must be id) and the timestamp.
func sameMessage(t *testing.T, got, want map[string]any, id string) {
	t.Helper()
	if got["id"] != id {
		t.Fatalf("message id %v, want %q", got["id"], id)
	}
	strip := func(m map[string]any) string {
		c := map[string]any{}
		for k, v := range m {
			if k != "id" && k != "ts" {
				c[k] = v
			}
		}
		return mustJSON(c)
	}
	if strip(got) != strip(want) {
		t.Fatalf("message %v, want it as %v", got, want)
	}
}

func TestGRPCPushReachesWebSocketAsHTTPDoes(t *testing.T) {
	n := startNode(t, nil)
	alice := n.dial("user=alice", dialOpt{})
	alice.send(`{"type":"join","room":"r1"}`)
	alice.expect("joined")
	clients := n.rpcClients()
	const data = `{"text":"hello","list":[1,2.5,true,null,"ünï"]}`
	for _, tc := range []struct {
		name string
		to   map[string]any
		pb   *heraldv1.Target
	}{
		{"user", map[string]any{"users": []string{"alice"}}, &heraldv1.Target{Users: []string{"alice"}}},
		{"room", map[string]any{"rooms": []string{"r1"}}, &heraldv1.Target{Rooms: []string{"r1"}}},
		{"conn", map[string]any{"conns": []string{alice.id}}, &heraldv1.Target{Conns: []string{alice.id}}},
		{"app", map[string]any{"app": true}, &heraldv1.Target{App: true}},
	} {
		n.push("", map[string]any{"to": tc.to, "data": json.RawMessage(data), "id": "http-" + tc.name})
		want := alice.expectMsgs(1)[0]
		sameMessage(t, want, want, "http-"+tc.name)
		for _, c := range clients {
			id := c.name + "-" + tc.name
			resp, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, "", heraldv1connect.HeraldServicePushProcedure,
				&heraldv1.PushRequest{To: tc.pb, Data: data, Id: id})
			if err != nil {
				t.Fatalf("%s push to %s: %v", c.name, tc.name, err)
			}
			if resp.Id != id {
				t.Fatalf("%s push answered id %q, want %q", c.name, resp.Id, id)
			}
			sameMessage(t, alice.expectMsgs(1)[0], want, id)
		}
	}
	// Without an id the server assigns one, as over HTTP.
	for _, c := range clients {
		resp, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, "", heraldv1connect.HeraldServicePushProcedure,
			&heraldv1.PushRequest{To: &heraldv1.Target{Users: []string{"alice"}}, Data: "7"})
		if err != nil || !strings.HasPrefix(resp.GetId(), "m_") {
			t.Fatalf("%s push without id: %v %v", c.name, resp, err)
		}
		if m := alice.expectMsgs(1)[0]; m["id"] != resp.Id || m["data"] != 7.0 {
			t.Fatalf("%s push without id delivered %v", c.name, m)
		}
	}
}

func TestGRPCBatchMatchesHTTP(t *testing.T) {
	n := startNode(t, nil)
	alice := n.dial("user=alice", dialOpt{})
	ttl0 := int64(0)
	items := []*heraldv1.PushRequest{
		{To: &heraldv1.Target{Users: []string{"alice"}}, Data: "1", Offline: true},
		{To: &heraldv1.Target{Rooms: []string{"news"}}, Data: "2"},
		{To: &heraldv1.Target{}, Data: "3"},
		{To: &heraldv1.Target{Users: []string{"bob"}}, Data: `"x"`, Ttl: &ttl0},
		{To: &heraldv1.Target{Conns: []string{"nope"}}, Data: "5"},
	}
	status, out := n.call("POST", "/v1/push/batch", "", `{"items":[
		{"to":{"users":["alice"]},"data":1,"offline":true},
		{"to":{"rooms":["news"]},"data":2},
		{"to":{},"data":3},
		{"to":{"users":["bob"]},"data":"x","ttl":0},
		{"to":{"conns":["nope"]},"data":5}]}`)
	if status != 200 {
		t.Fatalf("HTTP batch: %d %v", status, out)
	}
	want := out["results"].([]any)
	for _, c := range n.rpcClients() {
		resp, err := call[heraldv1.PushBatchRequest, heraldv1.PushBatchResponse](c, "", heraldv1connect.HeraldServicePushBatchProcedure,
			&heraldv1.PushBatchRequest{Items: items})
		if err != nil {
			t.Fatalf("%s batch: %v", c.name, err)
		}
		if len(resp.Results) != len(want) {
			t.Fatalf("%s batch: %d results, want %d", c.name, len(resp.Results), len(want))
		}
		for i, r := range resp.Results {
			w := want[i].(map[string]any)
			if e, ok := w["error"].(map[string]any); ok {
				if r.GetError().GetCode() != e["code"] || r.GetError().GetMessage() != e["message"] {
					t.Fatalf("%s batch item %d: %v, want error %v", c.name, i, r, e)
				}
			} else if !strings.HasPrefix(r.GetId(), "m_") {
				t.Fatalf("%s batch item %d: %v, want an id like %v", c.name, i, r, w["id"])
			}
		}
	}
	// alice got the stored item of each batch, in order.
	for i, m := range alice.expectMsgs(3) {
		if m["data"] != 1.0 || m["seq"] != float64(i+1) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
}

func TestGRPCOfflineStatusAndRecall(t *testing.T) {
	n := startNode(t, nil)
	clients := n.rpcClients()
	ttl := int64(3600)
	push := func(c rpcClient, req *heraldv1.PushRequest) {
		t.Helper()
		if _, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, "", heraldv1connect.HeraldServicePushProcedure, req); err != nil {
			t.Fatalf("%s push: %v", c.name, err)
		}
	}
	push(clients[0], &heraldv1.PushRequest{To: &heraldv1.Target{Users: []string{"bob", "carol"}}, Data: `"first"`, Offline: true, Ttl: &ttl, Id: "note-1"})
	push(clients[1], &heraldv1.PushRequest{To: &heraldv1.Target{Users: []string{"bob"}}, Data: `"second"`, Offline: true, Id: "note-2"})

	_, want := n.call("GET", "/v1/messages/note-1", "", nil)
	created, _ := time.Parse(time.RFC3339Nano, want["created"].(string))
	for _, c := range clients {
		st, err := call[heraldv1.GetMessageRequest, heraldv1.GetMessageResponse](c, "", heraldv1connect.HeraldServiceGetMessageProcedure,
			&heraldv1.GetMessageRequest{Id: "note-1"})
		if err != nil {
			t.Fatalf("%s status: %v", c.name, err)
		}
		got := map[string]any{"id": st.Id, "created": st.Created.AsTime().Equal(created), "ttl": float64(st.Ttl),
			"targeted": float64(st.Targeted), "delivered": float64(st.Delivered), "acked": float64(st.Acked),
			"expired": float64(st.Expired), "dropped": float64(st.Dropped), "recalled": st.Recalled}
		var users []any
		for _, u := range st.Users {
			users = append(users, map[string]any{"user": u.User, "seq": float64(u.Seq), "delivered": u.Delivered, "acked": u.Acked})
		}
		got["users"] = users
		w := map[string]any{"created": true}
		for k, v := range want {
			if k != "created" {
				w[k] = v
			}
		}
		if mustJSON(got) != mustJSON(w) || st.Targeted != 2 || st.Ttl != 3600 {
			t.Fatalf("%s status %s, HTTP says %s", c.name, mustJSON(got), mustJSON(want))
		}
		_, err = call[heraldv1.GetMessageRequest, heraldv1.GetMessageResponse](c, "", heraldv1connect.HeraldServiceGetMessageProcedure,
			&heraldv1.GetMessageRequest{Id: "nope"})
		if code, detail := errCodes(t, err); code != connect.CodeNotFound || detail != "not_found" {
			t.Fatalf("%s status of an unknown message: %v %q", c.name, code, detail)
		}
		_, err = call[heraldv1.RecallMessageRequest, heraldv1.RecallMessageResponse](c, "", heraldv1connect.HeraldServiceRecallMessageProcedure,
			&heraldv1.RecallMessageRequest{Id: "nope"})
		if code, detail := errCodes(t, err); code != connect.CodeNotFound || detail != "not_found" {
			t.Fatalf("%s recall of an unknown message: %v %q", c.name, code, detail)
		}
	}

	if _, err := call[heraldv1.RecallMessageRequest, heraldv1.RecallMessageResponse](clients[0], "", heraldv1connect.HeraldServiceRecallMessageProcedure,
		&heraldv1.RecallMessageRequest{Id: "note-1"}); err != nil {
		t.Fatalf("recall: %v", err)
	}
	st, err := call[heraldv1.GetMessageRequest, heraldv1.GetMessageResponse](clients[1], "", heraldv1connect.HeraldServiceGetMessageProcedure,
		&heraldv1.GetMessageRequest{Id: "note-1"})
	if err != nil || !st.Recalled {
		t.Fatalf("status after recall: %v %v", st, err)
	}
	// bob connects: only the message that was not recalled arrives.
	bob := n.dial("user=bob", dialOpt{noAuto: true})
	bob.expect("welcome")
	if m := bob.expectMsgs(1)[0]; m["id"] != "note-2" || m["seq"] != 2.0 || m["data"] != "second" {
		t.Fatalf("bob got %v", m)
	}
	bob.expect("resumed")
}

func TestGRPCAuthMatchesHTTP(t *testing.T) {
	n := startNode(t, twoApps)
	shop := n.dial("token="+token(t, "shop", shopSecret, "alice", nil), dialOpt{})
	clients := n.rpcClients()
	for _, tc := range []struct {
		name, key string
		req       *heraldv1.PushRequest
		http      string
		code      connect.Code
	}{
		{"no key", "", &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: "1"}, `{"to":{"app":true},"data":1}`, connect.CodeUnauthenticated},
		{"wrong key", "nope", &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: "1"}, `{"to":{"app":true},"data":1}`, connect.CodeUnauthenticated},
		{"another app", shopKey, &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: "1", App: "blog"}, `{"to":{"app":true},"data":1,"app":"blog"}`, connect.CodePermissionDenied},
		{"to.all by an app key", shopKey, &heraldv1.PushRequest{To: &heraldv1.Target{All: true}, Data: "1"}, `{"to":{"all":true},"data":1}`, connect.CodePermissionDenied},
		{"admin without app", adminKey, &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: "1"}, `{"to":{"app":true},"data":1}`, connect.CodeInvalidArgument},
	} {
		_, out := n.call("POST", "/v1/push", tc.key, tc.http)
		want := errCode(out)
		for _, c := range clients {
			_, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, tc.key, heraldv1connect.HeraldServicePushProcedure, tc.req)
			if code, detail := errCodes(t, err); code != tc.code || detail != want || want == "" {
				t.Fatalf("%s, %s: %v %q; want %v %q (as HTTP)", tc.name, c.name, code, detail, tc.code, want)
			}
		}
	}
	// A query is refused without a key too; a right key works.
	for _, c := range clients {
		_, err := call[heraldv1.GetMessageRequest, heraldv1.GetMessageResponse](c, "", heraldv1connect.HeraldServiceGetMessageProcedure,
			&heraldv1.GetMessageRequest{Id: "x"})
		if code, detail := errCodes(t, err); code != connect.CodeUnauthenticated || detail != "unauthorized" {
			t.Fatalf("%s status without a key: %v %q", c.name, code, detail)
		}
		if _, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, shopKey, heraldv1connect.HeraldServicePushProcedure,
			&heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: `"` + c.name + `"`}); err != nil {
			t.Fatalf("%s push with the app key: %v", c.name, err)
		}
		shop.expectData(c.name)
		if _, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, adminKey, heraldv1connect.HeraldServicePushProcedure,
			&heraldv1.PushRequest{To: &heraldv1.Target{Users: []string{"alice"}}, Data: `"admin"`, App: "shop"}); err != nil {
			t.Fatalf("%s push with the admin key: %v", c.name, err)
		}
		shop.expectData("admin")
	}
	// Every call is counted by its gRPC code: per client 4 pushes with a
	// right key (ok), 2 without one and the status query (unauthenticated),
	// 3 refused (permission_denied, invalid_argument).
	m := n.metrics()
	for _, want := range []string{`herald_rpc_requests_total{code="ok"} 4`, `herald_rpc_requests_total{code="unauthenticated"} 6`,
		`herald_rpc_requests_total{code="permission_denied"} 4`, `herald_rpc_requests_total{code="invalid_argument"} 2`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestGRPCBadInputMatchesHTTP(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.MaxPayload = 1024
		c.Limits.MaxBatch = 10
	})
	clients := n.rpcClients()
	ttl0 := int64(0)
	big := `"` + strings.Repeat("x", 2000) + `"`
	for _, tc := range []struct {
		name string
		req  *heraldv1.PushRequest
		http string
		code connect.Code
	}{
		{"no target", &heraldv1.PushRequest{To: &heraldv1.Target{}, Data: "1"}, `{"to":{},"data":1}`, connect.CodeInvalidArgument},
		{"no to", &heraldv1.PushRequest{Data: "1"}, `{"data":1}`, connect.CodeInvalidArgument},
		{"not a conn id", &heraldv1.PushRequest{To: &heraldv1.Target{Conns: []string{"nope"}}, Data: "1"}, `{"to":{"conns":["nope"]},"data":1}`, connect.CodeInvalidArgument},
		{"bad user name", &heraldv1.PushRequest{To: &heraldv1.Target{Users: []string{"a\x01"}}, Data: "1"}, `{"to":{"users":["a\u0001"]},"data":1}`, connect.CodeInvalidArgument},
		{"no data", &heraldv1.PushRequest{To: &heraldv1.Target{App: true}}, `{"to":{"app":true}}`, connect.CodeInvalidArgument},
		{"data not JSON", &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: "{"}, `{"to":{"app":true},"data":"{"}`, connect.CodeInvalidArgument},
		{"ttl 0", &heraldv1.PushRequest{To: &heraldv1.Target{Users: []string{"a"}}, Data: "1", Ttl: &ttl0}, `{"to":{"users":["a"]},"data":1,"ttl":0}`, connect.CodeInvalidArgument},
		{"offline without users", &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: "1", Offline: true}, `{"to":{"app":true},"data":1,"offline":true}`, connect.CodeInvalidArgument},
		{"data too large", &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: big}, `{"to":{"app":true},"data":` + big + `}`, connect.CodeResourceExhausted},
	} {
		_, out := n.call("POST", "/v1/push", "", tc.http)
		want := errCode(out)
		if tc.name == "data not JSON" {
			want = "invalid_argument" // HTTP sends a JSON string here: only gRPC can carry broken JSON text
		}
		for _, c := range clients {
			_, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, "", heraldv1connect.HeraldServicePushProcedure, tc.req)
			if code, detail := errCodes(t, err); code != tc.code || detail != want || want == "" {
				t.Fatalf("%s, %s: %v %q; want %v %q (as HTTP)", tc.name, c.name, code, detail, tc.code, want)
			}
		}
	}

	// Messages over the request limits are refused before they are read
	// whole, as HTTP answers 413.
	huge := `"` + strings.Repeat("x", 100<<10) + `"`
	if status, _ := n.call("POST", "/v1/push", "", `{"to":{"app":true},"data":`+huge+`}`); status != 413 {
		t.Fatalf("HTTP push over the body limit: %d", status)
	}
	var eleven, heavy []*heraldv1.PushRequest
	for range 11 {
		eleven = append(eleven, &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: "1"})
	}
	for range 2 {
		heavy = append(heavy, &heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: `"` + strings.Repeat("x", 30<<10) + `"`})
	}
	for _, c := range clients {
		_, err := call[heraldv1.PushRequest, heraldv1.PushResponse](c, "", heraldv1connect.HeraldServicePushProcedure,
			&heraldv1.PushRequest{To: &heraldv1.Target{App: true}, Data: huge})
		if code, _ := errCodes(t, err); code != connect.CodeResourceExhausted {
			t.Fatalf("%s push over the message limit: %v", c.name, err)
		}
		_, err = call[heraldv1.PushBatchRequest, heraldv1.PushBatchResponse](c, "", heraldv1connect.HeraldServicePushBatchProcedure,
			&heraldv1.PushBatchRequest{Items: heavy})
		if code, _ := errCodes(t, err); code != connect.CodeResourceExhausted {
			t.Fatalf("%s batch over the message limit: %v", c.name, err)
		}
		_, err = call[heraldv1.PushBatchRequest, heraldv1.PushBatchResponse](c, "", heraldv1connect.HeraldServicePushBatchProcedure,
			&heraldv1.PushBatchRequest{Items: eleven})
		if code, detail := errCodes(t, err); code != connect.CodeInvalidArgument || detail != "invalid_argument" {
			t.Fatalf("%s batch over max_batch: %v %q", c.name, code, detail)
		}
	}
	items := strings.TrimSuffix(strings.Repeat(`{"to":{"app":true},"data":1},`, 11), ",")
	if status, out := n.call("POST", "/v1/push/batch", "", `{"items":[`+items+`]}`); status != 400 || errCode(out) != "invalid_argument" {
		t.Fatalf("HTTP batch over max_batch: %d %v", status, out)
	}
}

func TestGRPCReflection(t *testing.T) {
	n := startNode(t, nil)
	cc := n.rpcClients()[0].cc
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	if len(names) != 1 || names[0] != heraldv1connect.HeraldServiceName {
		t.Fatalf("reflection lists %v", names)
	}
	_ = stream.CloseSend()
}

// TestGRPCCancelledCallLeavesNoGoroutine cancels a call whose request the
// server is still reading: the call's goroutines end at once, and once the
// node stops none of the goroutines it started is left.
func TestGRPCCancelledCallLeavesNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	n := startNode(t, nil)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	body, send := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", n.base+heraldv1connect.HeraldServicePushProcedure, body)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	done := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	// A gRPC message frame that announces 1000 bytes and sends 5.
	if _, err := send.Write([]byte{0, 0, 0, 0x03, 0xe8, 1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	inCall := func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "connectrpc.com/connect.(*Handler).ServeHTTP")
	}
	waitFor(t, inCall)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call ended with %v", err)
		}
	case <-time.After(wait):
		t.Fatal("cancelled call did not end")
	}
	waitFor(t, func() bool { return !inCall() })
	send.Close()
	tr.CloseIdleConnections()
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(before); err != nil {
		t.Fatal(err)
	}
}

// TestGRPCRoomsUsersAndKicksMatchHTTP runs the membership, query and kick
// calls against one node of two, for connections on both.
func TestGRPCRoomsUsersAndKicksMatchHTTP(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	n, other := nodes[1], nodes[0]
	phone := other.dial("user=alice&device=phone", dialOpt{})
	laptop := n.dial("user=alice&device=laptop", dialOpt{})
	bob := other.dial("user=bob", dialOpt{})
	clients := n.rpcClients()
	g, c := clients[0], clients[1]

	if _, err := call[heraldv1.JoinRoomRequest, heraldv1.JoinRoomResponse](g, "", heraldv1connect.HeraldServiceJoinRoomProcedure,
		&heraldv1.JoinRoomRequest{Room: "lobby", Users: []string{"alice"}}); err != nil {
		t.Fatalf("join users: %v", err)
	}
	if _, err := call[heraldv1.JoinRoomRequest, heraldv1.JoinRoomResponse](c, "", heraldv1connect.HeraldServiceJoinRoomProcedure,
		&heraldv1.JoinRoomRequest{Room: "lobby", Conns: []string{bob.id}}); err != nil {
		t.Fatalf("join conns: %v", err)
	}
	for _, cl := range []*client{phone, laptop, bob} {
		if j := cl.expect("joined"); j["room"] != "lobby" {
			t.Fatalf("joined %v", j)
		}
	}

	_, room := n.call("GET", "/v1/rooms/lobby", "", nil)
	_, user := n.call("GET", "/v1/users/alice", "", nil)
	for _, cl := range clients {
		r, err := call[heraldv1.GetRoomRequest, heraldv1.GetRoomResponse](cl, "", heraldv1connect.HeraldServiceGetRoomProcedure,
			&heraldv1.GetRoomRequest{Room: "lobby"})
		if err != nil {
			t.Fatalf("%s room: %v", cl.name, err)
		}
		members := []any{}
		for _, m := range r.Members {
			if m.Node == "" {
				t.Fatalf("%s room member without node: %v", cl.name, m)
			}
			members = append(members, map[string]any{"conn": m.Conn, "user": m.User})
		}
		got := map[string]any{"room": r.Room, "conns": float64(r.Conns), "users": float64(r.Users), "members": members}
		if mustJSON(got) != mustJSON(room) || r.Conns != 3 || r.Users != 2 || r.Next != "" {
			t.Fatalf("%s room %s, HTTP says %s", cl.name, mustJSON(got), mustJSON(room))
		}

		u, err := call[heraldv1.GetUserRequest, heraldv1.GetUserResponse](cl, "", heraldv1connect.HeraldServiceGetUserProcedure,
			&heraldv1.GetUserRequest{User: "alice"})
		if err != nil {
			t.Fatalf("%s user: %v", cl.name, err)
		}
		conns := []any{}
		for _, c := range u.Conns {
			conns = append(conns, map[string]any{"id": c.Id, "node": c.Node, "device": c.Device, "addr": c.Addr,
				"since": c.Since.AsTime().Format(time.RFC3339Nano), "rooms": c.Rooms})
		}
		got = map[string]any{"user": u.User, "online": u.Online, "count": float64(u.Count), "conns": conns}
		if mustJSON(got) != mustJSON(user) || len(u.Conns) != 2 || u.Conns[0].Node == u.Conns[1].Node {
			t.Fatalf("%s user %s, HTTP says %s", cl.name, mustJSON(got), mustJSON(user))
		}
	}

	if _, err := call[heraldv1.LeaveRoomRequest, heraldv1.LeaveRoomResponse](c, "", heraldv1connect.HeraldServiceLeaveRoomProcedure,
		&heraldv1.LeaveRoomRequest{Room: "lobby", Users: []string{"alice"}}); err != nil {
		t.Fatalf("leave: %v", err)
	}
	phone.expect("left")
	laptop.expect("left")
	r, err := call[heraldv1.GetRoomRequest, heraldv1.GetRoomResponse](g, "", heraldv1connect.HeraldServiceGetRoomProcedure,
		&heraldv1.GetRoomRequest{Room: "lobby"})
	if err != nil || r.Conns != 1 || r.Members[0].Conn != bob.id {
		t.Fatalf("room after leave: %v %v", r, err)
	}

	// Bad membership calls fail as over HTTP.
	for _, tc := range []struct {
		req  *heraldv1.JoinRoomRequest
		path string
	}{
		{&heraldv1.JoinRoomRequest{Room: "lobby"}, "/v1/rooms/lobby/join"},
		{&heraldv1.JoinRoomRequest{Room: "a\x01", Users: []string{"alice"}}, "/v1/rooms/a%01/join"},
	} {
		_, out := n.call("POST", tc.path, "", `{"users":`+mustJSON(tc.req.Users)+`}`)
		for _, cl := range clients {
			_, err := call[heraldv1.JoinRoomRequest, heraldv1.JoinRoomResponse](cl, "", heraldv1connect.HeraldServiceJoinRoomProcedure, tc.req)
			if code, detail := errCodes(t, err); code != connect.CodeInvalidArgument || detail != errCode(out) || detail == "" {
				t.Fatalf("%s join %v: %v %q; HTTP says %v", cl.name, tc.req, code, detail, out)
			}
		}
	}

	// Kicks reach the connections on either node; a second kick finds none.
	if _, err := call[heraldv1.KickConnRequest, heraldv1.KickConnResponse](c, "", heraldv1connect.HeraldServiceKickConnProcedure,
		&heraldv1.KickConnRequest{Id: bob.id}); err != nil {
		t.Fatalf("kick conn: %v", err)
	}
	if code := bob.expectClose(); code != protocol.CloseKicked {
		t.Fatalf("kicked conn closed with %d", code)
	}
	k, err := call[heraldv1.KickUserRequest, heraldv1.KickUserResponse](g, "", heraldv1connect.HeraldServiceKickUserProcedure,
		&heraldv1.KickUserRequest{User: "alice"})
	if err != nil || k.Kicked != 2 {
		t.Fatalf("kick user: %v %v", k, err)
	}
	for _, cl := range []*client{phone, laptop} {
		if code := cl.expectClose(); code != protocol.CloseKicked {
			t.Fatalf("kicked user's conn closed with %d", code)
		}
	}
	for _, cl := range clients {
		_, err := call[heraldv1.KickConnRequest, heraldv1.KickConnResponse](cl, "", heraldv1connect.HeraldServiceKickConnProcedure,
			&heraldv1.KickConnRequest{Id: bob.id})
		if code, detail := errCodes(t, err); code != connect.CodeNotFound || detail != "not_found" {
			t.Fatalf("%s second kick of a conn: %v %q", cl.name, code, detail)
		}
		_, err = call[heraldv1.KickUserRequest, heraldv1.KickUserResponse](cl, "", heraldv1connect.HeraldServiceKickUserProcedure,
			&heraldv1.KickUserRequest{User: "alice"})
		if code, detail := errCodes(t, err); code != connect.CodeNotFound || detail != "not_found" {
			t.Fatalf("%s second kick of a user: %v %q", cl.name, code, detail)
		}
		u, err := call[heraldv1.GetUserRequest, heraldv1.GetUserResponse](cl, "", heraldv1connect.HeraldServiceGetUserProcedure,
			&heraldv1.GetUserRequest{User: "alice"})
		if err != nil || u.Online || len(u.Conns) != 0 {
			t.Fatalf("%s kicked user: %v %v", cl.name, u, err)
		}
	}
}

// TestGRPCStatsNodesAndRouteMatchHTTP uses the generated Connect client
// speaking gRPC, as docs/api.md shows it.
func TestGRPCStatsNodesAndRouteMatchHTTP(t *testing.T) {
	n := startNode(t, twoApps)
	alice := n.dial("token="+token(t, "shop", shopSecret, "alice", nil), dialOpt{})
	n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": 1})
	alice.expectData(1)

	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	client := heraldv1connect.NewHeraldServiceClient(h2c, n.base, connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	keyed := func(req connect.AnyRequest, key string) {
		req.Header().Set("Authorization", "Bearer "+key)
	}

	for _, key := range []string{shopKey, adminKey} {
		req := connect.NewRequest(&heraldv1.GetStatsRequest{})
		keyed(req, key)
		s, err := client.GetStats(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		_, want := n.call("GET", "/v1/stats", key, nil)
		got := map[string]any{"nodes": float64(s.Msg.Nodes), "conns": float64(s.Msg.Conns), "users": float64(s.Msg.Users),
			"rooms": float64(s.Msg.Rooms), "pushes": float64(s.Msg.Pushes), "deliveries": float64(s.Msg.Deliveries)}
		if mustJSON(got) != mustJSON(want) || s.Msg.Conns != 1 || s.Msg.Pushes != 1 {
			t.Fatalf("stats %s, HTTP says %s", mustJSON(got), mustJSON(want))
		}
	}

	req := connect.NewRequest(&heraldv1.ListNodesRequest{})
	keyed(req, shopKey)
	nodes, err := client.ListNodes(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	_, want := n.call("GET", "/v1/nodes", shopKey, nil)
	wantNodes := want["nodes"].([]any)
	if len(nodes.Msg.Nodes) != 1 || len(wantNodes) != 1 {
		t.Fatalf("nodes %v, HTTP says %v", nodes.Msg, want)
	}
	got, w := nodes.Msg.Nodes[0], wantNodes[0].(map[string]any)
	if got.Id != w["id"] || got.Addr != w["addr"] || float64(got.Conns) != w["conns"] || got.Version != w["version"] || got.Heartbeat == nil {
		t.Fatalf("node %v, HTTP says %v", got, w)
	}

	rreq := connect.NewRequest(&heraldv1.GetRouteRequest{})
	keyed(rreq, shopKey)
	route, err := client.GetRoute(ctx, rreq)
	if err != nil {
		t.Fatal(err)
	}
	_, want = n.call("GET", "/v1/route", shopKey, nil)
	if route.Msg.Node != want["node"] || route.Msg.Url != want["url"] || route.Msg.Load != want["load"] {
		t.Fatalf("route %v, HTTP says %v", route.Msg, want)
	}

	_, err = client.GetStats(ctx, connect.NewRequest(&heraldv1.GetStatsRequest{}))
	if code, detail := errCodes(t, err); code != connect.CodeUnauthenticated || detail != "unauthorized" {
		t.Fatalf("stats without a key: %v %q", code, detail)
	}
}

// TestGRPCDrainMatchesHTTP drains a node over gRPC: refused to app keys
// and for a bad time, as over HTTP; then the node moves its clients away
// and exits.
func TestGRPCDrainMatchesHTTP(t *testing.T) {
	n := startNode(t, twoApps)
	phone := n.dial("token="+token(t, "shop", shopSecret, "alice", nil), dialOpt{})
	laptop := n.dial("token="+token(t, "shop", shopSecret, "alice", nil), dialOpt{})
	id := nodeOfConn(phone.id)
	clients := n.rpcClients()
	for _, tc := range []struct {
		key, http string
		req       *heraldv1.DrainRequest
		code      connect.Code
	}{
		{shopKey, `{}`, &heraldv1.DrainRequest{}, connect.CodePermissionDenied},
		{adminKey, `{"drain_time":"-1s"}`, &heraldv1.DrainRequest{DrainTime: durationpb.New(-time.Second)}, connect.CodeInvalidArgument},
	} {
		_, out := n.call("POST", "/v1/admin/drain", tc.key, tc.http)
		for _, cl := range clients {
			_, err := call[heraldv1.DrainRequest, heraldv1.DrainResponse](cl, tc.key, heraldv1connect.HeraldServiceDrainProcedure, tc.req)
			if code, detail := errCodes(t, err); code != tc.code || detail != errCode(out) || detail == "" {
				t.Fatalf("%s drain %v: %v %q; HTTP says %v", cl.name, tc.req, code, detail, out)
			}
		}
	}
	// Two clients over 2 s: the second closes a second after the first, so
	// the node still answers the second drain call.
	d, err := call[heraldv1.DrainRequest, heraldv1.DrainResponse](clients[0], adminKey, heraldv1connect.HeraldServiceDrainProcedure,
		&heraldv1.DrainRequest{DrainTime: durationpb.New(2 * time.Second)})
	if err != nil || d.Node != id || d.Conns != 2 || d.DrainTime.AsDuration() != 2*time.Second || d.Already {
		t.Fatalf("drain: %v %v", d, err)
	}
	d, err = call[heraldv1.DrainRequest, heraldv1.DrainResponse](clients[1], adminKey, heraldv1connect.HeraldServiceDrainProcedure,
		&heraldv1.DrainRequest{})
	if err != nil || !d.Already || d.Node != id {
		t.Fatalf("second drain: %v %v", d, err)
	}
	for _, c := range []*client{phone, laptop} {
		if code := c.expectClose(); code != protocol.CloseDraining {
			t.Fatalf("drained client closed with %d, want %d", code, protocol.CloseDraining)
		}
	}
	if err := n.exited(); err != nil {
		t.Fatalf("drained node exited with %v", err)
	}
}

package herald_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/heraldpush/herald/sdk/herald"
)

// A backend pushes a stored message to a user and follows it.
func ExampleClient_Push() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := herald.NewClient("http://127.0.0.1:8080", os.Getenv("HERALD_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	id, err := client.Push(ctx, herald.PushRequest{
		To:      herald.Target{Users: []string{"alice"}},
		Data:    map[string]any{"order": 42, "status": "shipped"},
		Offline: true,           // stored until alice acks it or it expires
		TTL:     24 * time.Hour, // how long it is kept
	})
	if herald.ErrorCode(err) == herald.CodeUnauthorized {
		log.Fatal("wrong API key")
	}
	if err != nil {
		log.Fatal(err)
	}
	st, err := client.MessageStatus(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: stored for %d users, %d delivered, %d acked\n", id, st.Targeted, st.Delivered, st.Acked)
}

// A Go program stays connected as a user, joins a room and processes its
// messages, acking each once it is processed. It resumes where it left off
// after network failures and server restarts.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token := os.Getenv("HERALD_TOKEN") // a client token your backend minted
	conn, err := herald.Dial(ctx, "ws://127.0.0.1:8080/v1/ws", herald.WithToken(token))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Join("lobby"); err != nil {
		log.Fatal(err)
	}
	for ev := range conn.Events() {
		switch ev := ev.(type) {
		case *herald.Message:
			var v any
			_ = json.Unmarshal(ev.Data, &v)
			fmt.Println("message", ev.ID, ev.Seq, ev.Room, v)
			if ev.Seq > 0 {
				_ = conn.Ack(ev.Seq) // processed: not replayed to any of the user's devices
			}
		case *herald.Resumed:
			if !ev.Complete {
				fmt.Println("some stored messages expired: refetch from the backend")
			}
		case *herald.RequestError:
			fmt.Println("refused:", ev)
		case *herald.Disconnected:
			fmt.Println("disconnected:", ev.Err, "retrying:", ev.Retry)
		}
	}
	var closed *herald.CloseError
	if errors.As(conn.Err(), &closed) && closed.Code == herald.CloseKicked {
		fmt.Println("kicked by the server")
	}
}

package auth

import (
	"testing"
	"time"
)

func BenchmarkVerify(b *testing.B) {
	ring, err := NewKeyring(map[string]KeySpec{"bench": {Secret: testSecret}})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := Mint("bench", testSecret, Claims{
		User: "user-1", Device: "phone", Rooms: []string{"lobby", "news*"}, Send: true,
		Expires: testNow.Add(time.Hour),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.Verify(tok, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

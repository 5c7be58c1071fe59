package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/internal/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, PEM, into dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{cert: {Type: "CERTIFICATE", Bytes: der}, key: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}

// trusting returns a TLS client configuration that trusts the certificate
// in the PEM file cert.
func trusting(t *testing.T, cert string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in " + cert)
	}
	return &tls.Config{RootCAs: pool}
}

// TestTLS: with a certificate the one listener serves HTTPS, wss:// (a
// client gets pushes, heartbeats and its close code as over TCP) and gRPC
// over HTTP/2 with TLS; plain HTTP is refused.
func TestTLS(t *testing.T) {
	cert, key := selfSigned(t, t.TempDir())
	n := startNode(t, func(c *config.Config) { c.TLSCert, c.TLSKey = cert, key })
	c := n.dial("user=tia", dialOpt{})
	n.push("", map[string]any{"to": map[string]any{"users": []string{"tia"}}, "data": "over https"})
	if m := c.expect("push")["msgs"].([]any)[0].(map[string]any); m["data"] != "over https" {
		t.Fatalf("push over TLS: %v", m)
	}
	// A reply to a frame the client sends: the read side works too.
	c.send(`{"type":"join","room":"tls"}`)
	c.expect("joined")

	cc, err := grpc.NewClient(strings.TrimPrefix(n.base, "https://"), grpc.WithTransportCredentials(credentials.NewTLS(n.tls)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var resp heraldv1.PushResponse
	req := &heraldv1.PushRequest{To: &heraldv1.Target{Rooms: []string{"tls"}}, Data: `"over grpc"`}
	if err := cc.Invoke(ctx, "/herald.v1.HeraldService/Push", req, &resp); err != nil || resp.Id == "" {
		t.Fatalf("gRPC push over TLS: %v, %v", &resp, err)
	}
	if m := c.expect("push")["msgs"].([]any)[0].(map[string]any); m["data"] != "over grpc" || m["room"] != "tls" {
		t.Fatalf("gRPC push over TLS: %v", m)
	}

	plain := strings.Replace(n.base, "https://", "http://", 1)
	if resp, err := http.Get(plain + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS listener")
		}
	}
	n.call("DELETE", "/v1/users/tia/conns", "", nil)
	bad := config.Default()
	bad.Dev, bad.Data, bad.TLSCert, bad.TLSKey = true, t.TempDir(), key, key
	if _, err := New(bad, nil); err == nil ||
		!strings.Contains(err.Error(), "tls") {
		t.Fatalf("New with a key as the certificate: %v", err)
	}
	if code := c.expectClose(); code != 4002 {
		t.Fatalf("kicked TLS client closed with %d, want 4002", code)
	}
}

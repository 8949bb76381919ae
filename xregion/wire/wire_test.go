package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"yibao"
	"yibao/gmcrypto"
)

// TestVerify: only an intact message from a known sender, inside the time
// window and seen once, passes; every refusal has its stable code.
func TestVerify(t *testing.T) {
	node, _ := gmcrypto.GenerateKey(rand.Reader)
	other, _ := gmcrypto.GenerateKey(rand.Reader)
	v := &Verifier{Keys: func(from string) *gmcrypto.PublicKey {
		if from == "37" {
			return node.Public()
		}
		return nil
	}}
	body := []byte(`{"txid":"ST1","clr_month":"2026-12"}`)
	signed := func(from string, key *gmcrypto.PrivateKey) *http.Request {
		r := httptest.NewRequest("POST", "/xr/v1/commit", bytes.NewReader(body))
		(&Signer{From: from, Key: key}).Sign(r, body)
		return r
	}
	replayed := signed("37", node)
	cases := []struct {
		name string
		req  func() *http.Request
		want yibao.Code
	}{
		{"intact", func() *http.Request { return signed("37", node) }, ""},
		{"unknown sender", func() *http.Request { return signed("99", node) }, yibao.CodeUnauthenticated},
		{"signed by another key", func() *http.Request { return signed("37", other) }, yibao.CodeBadSignature},
		{"no headers", func() *http.Request { return httptest.NewRequest("POST", "/xr/v1/commit", bytes.NewReader(body)) }, yibao.CodeUnauthenticated},
		{"body changed", func() *http.Request {
			r := signed("37", node)
			r.Body = httptest.NewRequest("POST", "/", bytes.NewReader([]byte(`{"txid":"ST2","clr_month":"2026-12"}`))).Body
			return r
		}, yibao.CodeBadSignature},
		{"path changed", func() *http.Request {
			r := signed("37", node)
			r.URL.Path = "/xr/v1/abort"
			return r
		}, yibao.CodeBadSignature},
		{"outside the window", func() *http.Request {
			r := signed("37", node)
			r.Header.Set(HeaderTime, strconv.FormatInt(time.Now().Add(-10*time.Minute).UnixMilli(), 10))
			return r
		}, yibao.CodeReplay},
		{"first use of a message", func() *http.Request { return replayed }, ""},
		{"the same message again", func() *http.Request {
			r := httptest.NewRequest("POST", "/xr/v1/commit", bytes.NewReader(body))
			r.Header = replayed.Header.Clone()
			return r
		}, yibao.CodeReplay},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			from, got, err := v.Verify(c.req())
			if yibao.ErrorCode(err) != c.want {
				t.Fatalf("code %q (%v), want %q", yibao.ErrorCode(err), err, c.want)
			}
			if c.want == "" && (from != "37" || !bytes.Equal(got, body)) {
				t.Fatalf("from %q body %s", from, got)
			}
		})
	}
}

// TestCallCarriesCodes: a refusal comes back with the receiver's code, a
// dead peer as unavailable.
func TestCallCarriesCodes(t *testing.T) {
	key, _ := gmcrypto.GenerateKey(rand.Reader)
	v := &Verifier{Keys: func(string) *gmcrypto.PublicKey { return key.Public() }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, body, err := v.Verify(r)
		if err == nil {
			var in map[string]string
			json.Unmarshal(body, &in)
			if in["txid"] == "" {
				err = yibao.FieldError("txid", "required")
			}
		}
		Reply(w, map[string]bool{"ok": true}, err)
	}))
	defer srv.Close()
	c := &Client{Signer: &Signer{From: "32", Key: key}, Timeout: time.Second}
	var out map[string]bool
	if err := c.Call(context.Background(), srv.URL, "/x", map[string]string{"txid": "ST1"}, &out); err != nil || !out["ok"] {
		t.Fatalf("call: %v %v", out, err)
	}
	if err := c.Call(context.Background(), srv.URL, "/x", map[string]string{}, &out); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("refusal: %v", err)
	}
	srv.Close()
	if err := c.Call(context.Background(), srv.URL, "/x", map[string]string{"txid": "ST1"}, &out); !yibao.IsCode(err, yibao.CodeUnavailable) {
		t.Fatalf("dead peer: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		attempts int
		want     time.Duration
	}{{0, time.Second}, {1, 2 * time.Second}, {5, 32 * time.Second}, {6, time.Minute}, {40, time.Minute}} {
		if got := Backoff(c.attempts); got != c.want {
			t.Errorf("Backoff(%d) = %s, want %s", c.attempts, got, c.want)
		}
	}
}

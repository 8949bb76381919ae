package bankapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao/gmcrypto"
)

var (
	platformKey = gmcrypto.DeterministicKey([]byte("bankapi-test/platform"))
	bankKey     = gmcrypto.DeterministicKey([]byte("bankapi-test/bank"))
	otherKey    = gmcrypto.DeterministicKey([]byte("bankapi-test/other"))
)

// signed builds a request as a client signs it and returns it as a server
// receives it.
func signed(t *testing.T, method, target string, body []byte, keyID string, key *gmcrypto.PrivateKey) *http.Request {
	t.Helper()
	out, err := http.NewRequest(method, "http://bank.test"+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := SignRequest(out, body, keyID, key); err != nil {
		t.Fatal(err)
	}
	in := httptest.NewRequest(method, target, bytes.NewReader(body))
	in.Header = out.Header.Clone()
	return in
}

func TestVerifyRequest(t *testing.T) {
	body := []byte(`{"draw_id":"D1","amount_fen":1200}`)
	now := time.Now()
	tests := []struct {
		name     string
		req      func() *http.Request
		body     []byte
		now      time.Time
		wantErr  error
		wantCode string
	}{
		{"valid", func() *http.Request { return signed(t, "POST", "/credit/draws?x=1", body, "plat", platformKey) }, body, now, nil, ""},
		{"valid empty GET", func() *http.Request { return signed(t, "GET", "/credit/applications/A1", nil, "plat", platformKey) }, nil, now, nil, ""},
		{"tampered body", func() *http.Request { return signed(t, "POST", "/credit/draws", body, "plat", platformKey) },
			[]byte(`{"draw_id":"D1","amount_fen":1201}`), now, ErrBadSignature, CodeBadSignature},
		{"tampered path", func() *http.Request {
			r := signed(t, "POST", "/credit/draws", body, "plat", platformKey)
			r.RequestURI = "/credit/repayments"
			return r
		}, body, now, ErrBadSignature, CodeBadSignature},
		{"tampered method", func() *http.Request {
			r := signed(t, "POST", "/credit/draws", body, "plat", platformKey)
			r.Method = "PUT"
			return r
		}, body, now, ErrBadSignature, CodeBadSignature},
		{"wrong key", func() *http.Request { return signed(t, "POST", "/credit/draws", body, "plat", otherKey) }, body, now, ErrBadSignature, CodeBadSignature},
		{"wrong key id", func() *http.Request { return signed(t, "POST", "/credit/draws", body, "someone", platformKey) }, body, now, ErrBadSignature, CodeBadSignature},
		{"missing signature", func() *http.Request {
			r := signed(t, "POST", "/credit/draws", body, "plat", platformKey)
			r.Header.Del(HeaderSignature)
			return r
		}, body, now, ErrBadSignature, CodeBadSignature},
		{"short nonce", func() *http.Request {
			r := signed(t, "POST", "/credit/draws", body, "plat", platformKey)
			r.Header.Set(HeaderNonce, "abc")
			return r
		}, body, now, ErrBadSignature, CodeBadSignature},
		{"stale timestamp", func() *http.Request { return signed(t, "POST", "/credit/draws", body, "plat", platformKey) }, body, now.Add(6 * time.Minute), ErrStaleTimestamp, CodeStaleTimestamp},
		{"future timestamp", func() *http.Request { return signed(t, "POST", "/credit/draws", body, "plat", platformKey) }, body, now.Add(-6 * time.Minute), ErrStaleTimestamp, CodeStaleTimestamp},
		{"timestamp changed after signing", func() *http.Request {
			r := signed(t, "POST", "/credit/draws", body, "plat", platformKey)
			// One second after what was signed (not after now: the clock
			// may have ticked since now was read, and then "changed" would
			// be the very value signed).
			ts, _ := strconv.ParseInt(r.Header.Get(HeaderTimestamp), 10, 64)
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts+1, 10))
			return r
		}, body, now, ErrBadSignature, CodeBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyRequest(tt.req(), tt.body, "plat", platformKey.Public(), tt.now, NewNonceCache(0))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyRequest = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if e := Refusal(err); e.Status != 401 || e.Code != tt.wantCode {
					t.Errorf("Refusal = %d %s, want 401 %s", e.Status, e.Code, tt.wantCode)
				}
			}
		})
	}
}

func TestVerifyRequestReplay(t *testing.T) {
	body := []byte(`{}`)
	r := signed(t, "POST", "/credit/status", body, "plat", platformKey)
	nonces := NewNonceCache(time.Minute) // raised to 2×Window
	now := time.Now()
	if err := VerifyRequest(r, body, "plat", platformKey.Public(), now, nonces); err != nil {
		t.Fatal(err)
	}
	err := VerifyRequest(r, body, "plat", platformKey.Public(), now.Add(4*time.Minute), nonces)
	if !errors.Is(err, ErrReplayed) || Refusal(err).Code != CodeReplayed {
		t.Fatalf("replay: %v", err)
	}
	// A refused (badly signed) request does not burn its nonce.
	r2 := signed(t, "POST", "/credit/status", body, "plat", platformKey)
	if err := VerifyRequest(r2, []byte(`{"x":1}`), "plat", platformKey.Public(), now, nonces); !errors.Is(err, ErrBadSignature) {
		t.Fatal(err)
	}
	if err := VerifyRequest(r2, body, "plat", platformKey.Public(), now, nonces); err != nil {
		t.Fatalf("after a refused copy: %v", err)
	}
}

func TestNonceCacheConcurrent(t *testing.T) {
	c := &NonceCache{}
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				if c.Add(fmt.Sprint(j), now) {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if fresh != 100 {
		t.Fatalf("%d nonces accepted as new, want 100", fresh)
	}
	if !c.Add("0", now.Add(11*time.Minute)) {
		t.Fatal("an expired nonce is still refused")
	}
}

// fakeBank verifies requests and answers with what answer returns,
// then lets mangle change the signed answer before it leaves.
type fakeBank struct {
	answer func(r *http.Request, body []byte) (int, any)
	mangle func(h http.Header, status *int, body []byte) []byte
	key    *gmcrypto.PrivateKey
}

func (b *fakeBank) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := b.key
	if key == nil {
		key = bankKey
	}
	rec := httptest.NewRecorder()
	if err := VerifyRequest(r, body, "plat", platformKey.Public(), time.Now(), nil); err != nil {
		WriteError(rec, r, Refusal(err), "bank", key)
	} else {
		st, v := b.answer(r, body)
		WriteJSON(rec, r, st, v, "bank", key)
	}
	out, status := rec.Body.Bytes(), rec.Code
	if b.mangle != nil {
		out = b.mangle(rec.Header(), &status, out)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	w.Write(out)
}

type clientCase struct {
	name        string
	bank        fakeBank
	clientKeyID string
	wantErr     error
	wantStatus  int // of the *Error expected
	unknown     bool
}

func TestClientAnswers(t *testing.T) {
	dec := Decision{ApplyID: "A1", Status: DecisionApproved, BankAgreementID: "BKA000000000001", LimitFen: 50000, Score: 620,
		DecidedAt: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	okAnswer := func(*http.Request, []byte) (int, any) { return 200, dec }
	refuse := func(status int, code string) func(*http.Request, []byte) (int, any) {
		return func(*http.Request, []byte) (int, any) { return status, Error{Code: code, Message: "refused"} }
	}
	tests := []clientCase{
		{"valid", fakeBank{answer: okAnswer}, "plat", nil, 0, false},
		{"tampered answer body", fakeBank{answer: okAnswer, mangle: func(_ http.Header, _ *int, b []byte) []byte {
			return bytes.Replace(b, []byte("50000"), []byte("90000"), 1)
		}}, "plat", ErrBadSignature, 0, true},
		{"signature moved to another body", fakeBank{answer: func(*http.Request, []byte) (int, any) {
			return 200, Decision{ApplyID: "A1", Status: DecisionDeclined}
		}, mangle: func(_ http.Header, _ *int, _ []byte) []byte {
			out, _ := json.Marshal(dec)
			return out
		}}, "plat", ErrBadSignature, 0, true},
		{"tampered answer status", fakeBank{answer: refuse(503, "BUSY"), mangle: func(_ http.Header, st *int, b []byte) []byte {
			*st = 422 // a 5xx dressed up as a definite refusal
			return b
		}}, "plat", ErrBadSignature, 0, true},
		{"answer signed by another key", fakeBank{answer: okAnswer, key: otherKey}, "plat", ErrBadSignature, 0, true},
		{"answer to another request", fakeBank{answer: okAnswer, mangle: func(h http.Header, _ *int, b []byte) []byte {
			h.Set(HeaderNonce, strings.Repeat("0", 32))
			return b
		}}, "plat", ErrBadSignature, 0, true},
		{"unsigned answer", fakeBank{answer: okAnswer, mangle: func(h http.Header, _ *int, b []byte) []byte {
			h.Del(HeaderSignature)
			return b
		}}, "plat", ErrBadSignature, 0, true},
		{"signed refusal", fakeBank{answer: refuse(409, CodeDuplicateApplyID)}, "plat", nil, 409, false},
		{"signed 5xx", fakeBank{answer: refuse(503, "BUSY")}, "plat", nil, 503, true},
		{"request refused by the bank", fakeBank{answer: okAnswer}, "wrong", nil, 401, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&tt.bank)
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, KeyID: tt.clientKeyID, Key: platformKey, BankKeyID: "bank", BankKey: bankKey.Public()}
			got, err := c.Apply(context.Background(), ApplyRequest{ApplyID: "A1"})
			if Unknown(err) != tt.unknown {
				t.Errorf("Unknown(%v) = %v, want %v", err, !tt.unknown, tt.unknown)
			}
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.wantStatus != 0:
				var e *Error
				if !errors.As(err, &e) || e.Status != tt.wantStatus || e.Code == "" {
					t.Fatalf("err = %v, want a %d *Error", err, tt.wantStatus)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if got.LimitFen != 50000 || got.BankAgreementID != dec.BankAgreementID || !got.DecidedAt.Equal(dec.DecidedAt) {
					t.Fatalf("decision = %+v", got)
				}
			}
		})
	}
}

func TestClientTimeoutIsUnknown(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	c := &Client{BaseURL: srv.URL, KeyID: "plat", Key: platformKey, BankKeyID: "bank", BankKey: bankKey.Public()}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Draw(ctx, DrawNotice{DrawID: "D1"})
	if !errors.Is(err, context.DeadlineExceeded) || !Unknown(err) {
		t.Fatalf("err = %v; want a deadline, unknown outcome", err)
	}
	c.BaseURL = "http://127.0.0.1:1" // nothing listens
	if err := c.Draw(context.Background(), DrawNotice{DrawID: "D1"}); err == nil || !Unknown(err) {
		t.Fatalf("transport err = %v; want unknown outcome", err)
	}
	c.Key = nil
	if err := c.Draw(context.Background(), DrawNotice{DrawID: "D1"}); !errors.Is(err, ErrNotSent) || Unknown(err) {
		t.Fatalf("no key: %v; want ErrNotSent, known outcome", err)
	}
}

func TestUnknown(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&Error{Status: 409, Code: CodeDuplicateApplyID}, false},
		{fmt.Errorf("wrapped: %w", &Error{Status: 422, Code: CodeAgreementNotActive}), false},
		{&Error{Status: 500, Code: "INTERNAL"}, true},
		{fmt.Errorf("x: %w", ErrBadSignature), true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("x: %w", ErrNotSent), false},
	}
	for _, tt := range tests {
		if got := Unknown(tt.err); got != tt.want {
			t.Errorf("Unknown(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestCallbackRoundTrip(t *testing.T) {
	nonces := NewNonceCache(0)
	type seen struct {
		cb   *Callback
		err  error
		body []byte
		hdr  http.Header
	}
	got := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cb, err := ParseCallback(r, body, "bank", bankKey.Public(), time.Now(), nonces)
		got <- seen{cb, err, body, r.Header.Clone()}
		if err != nil {
			e := Refusal(err)
			w.WriteHeader(e.Status)
			json.NewEncoder(w).Encode(e)
			return
		}
		w.Write([]byte(`{"code":"SUCCESS"}`))
	}))
	defer srv.Close()
	paid := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	cb := Callback{Type: CallbackRepayment, EventID: "BKR1", AgreementNo: "AG1", BankAgreementID: "BKA1", At: paid,
		Repayment: &Repayment{RepayID: "BKR1", AgreementNo: "AG1", BankAgreementID: "BKA1", Channel: ChannelCounter, AmountFen: 3000, PaidAt: paid}}
	url := srv.URL + "/api/v1/credit/notify/yhbank"
	if err := SendCallback(context.Background(), nil, url, cb, "bank", bankKey); err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.err != nil || s.cb.Repayment.AmountFen != 3000 || s.cb.EventID != "BKR1" {
		t.Fatalf("parsed %+v, %v", s.cb, s.err)
	}

	// The same delivery replayed verbatim is refused.
	req, _ := http.NewRequest("POST", url, bytes.NewReader(s.body))
	req.Header = s.hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := <-got; !errors.Is(s.err, ErrReplayed) || resp.StatusCode != 401 {
		t.Fatalf("replay: %d %v", resp.StatusCode, s.err)
	}

	// Signed by someone else: refused, reported as a 401 *Error.
	err = SendCallback(context.Background(), nil, url, cb, "bank", otherKey)
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != CodeBadSignature {
		t.Fatalf("forged callback: %v", err)
	}
	<-got

	// Well signed but malformed: 400.
	bad := cb
	bad.Repayment = nil
	err = SendCallback(context.Background(), nil, url, bad, "bank", bankKey)
	if !errors.As(err, &e) || e.Status != 400 {
		t.Fatalf("malformed callback: %v", err)
	}
	if s := <-got; !errors.Is(s.err, ErrMalformed) {
		t.Fatalf("malformed: %v", s.err)
	}
}

func TestSignResponseEchoesNonce(t *testing.T) {
	r := signed(t, "GET", "/credit/agreements/BKA1", nil, "plat", platformKey)
	w := httptest.NewRecorder()
	SignResponse(w, r, 200, []byte(`{"status":"active"}`), "bank", bankKey)
	if w.Header().Get(HeaderNonce) != r.Header.Get(HeaderNonce) {
		t.Fatal("the answer does not echo the request nonce")
	}
	sig, _ := base64.StdEncoding.DecodeString(w.Header().Get(HeaderSignature))
	msg := responseCanonical("/credit/agreements/BKA1", 200, w.Header().Get(HeaderTimestamp), r.Header.Get(HeaderNonce), w.Body.Bytes())
	if !bankKey.Public().Verify(msg, sig) {
		t.Fatal("the answer's signature does not verify")
	}
}

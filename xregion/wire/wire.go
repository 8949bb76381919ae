// Package wire is the signed HTTP that region nodes and the national hub
// speak (docs/cross-region.md): JSON bodies, each request signed with the
// sender's SM2 key over its method, path, time, nonce and the body's SM3
// digest; the receiver knows every sender's public key in advance. Every
// message is idempotent by its own identifier, so a retry is always safe;
// the nonce window only keeps a recorded request from being replayed
// outside it.
package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/gmcrypto"
)

// Headers of a signed message.
const (
	HeaderFrom  = "X-Yibao-From"  // the sender's id: a node id or "hub"
	HeaderTime  = "X-Yibao-Time"  // unix milliseconds
	HeaderNonce = "X-Yibao-Nonce" // 16 random bytes, hex
	HeaderSign  = "X-Yibao-Sign"  // base64 SM2 signature (ASN.1) over Canonical
)

// Window is how far a message's time may be from the receiver's clock.
const Window = 5 * time.Minute

// MaxBody bounds a message body.
const MaxBody = 4 << 20

// uid is the SM2 signer id of these messages.
var uid = []byte("yibao-xregion")

// Canonical is the text a message's signature covers.
func Canonical(method, path, from, ts, nonce string, body []byte) []byte {
	d := gmcrypto.SM3(body)
	return []byte(method + "\n" + path + "\n" + from + "\n" + ts + "\n" + nonce + "\n" + hex.EncodeToString(d[:]))
}

// Signer signs outgoing messages as one sender.
type Signer struct {
	From string
	Key  *gmcrypto.PrivateKey
}

// Sign adds the signature headers to r for body.
func (s *Signer) Sign(r *http.Request, body []byte) error {
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	n := make([]byte, 16)
	rand.Read(n)
	nonce := hex.EncodeToString(n)
	sig, err := s.Key.SignUID(uid, Canonical(r.Method, r.URL.Path, s.From, ts, nonce, body))
	if err != nil {
		return err
	}
	r.Header.Set(HeaderFrom, s.From)
	r.Header.Set(HeaderTime, ts)
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSign, base64.StdEncoding.EncodeToString(sig))
	return nil
}

// Verifier checks incoming messages against the senders it knows.
type Verifier struct {
	Keys func(from string) *gmcrypto.PublicKey // nil: unknown sender

	mu   sync.Mutex
	seen map[string]time.Time
}

// Verify reads and checks a signed request; it returns the sender and the
// body. Errors carry stable codes: unauthenticated, bad_signature,
// replayed_request, request_too_large.
func (v *Verifier) Verify(r *http.Request) (string, []byte, error) {
	from, ts, nonce, sig := r.Header.Get(HeaderFrom), r.Header.Get(HeaderTime), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSign)
	if from == "" || ts == "" || nonce == "" || sig == "" {
		return "", nil, yibao.Errorf(yibao.CodeUnauthenticated, "a cross-region message needs %s, %s, %s and %s", HeaderFrom, HeaderTime, HeaderNonce, HeaderSign)
	}
	key := v.Keys(from)
	if key == nil {
		return "", nil, yibao.Errorf(yibao.CodeUnauthenticated, "unknown sender %q", from)
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(nonce) != 32 {
		return "", nil, yibao.Errorf(yibao.CodeUnauthenticated, "malformed %s or %s", HeaderTime, HeaderNonce)
	}
	at := time.UnixMilli(ms)
	if d := time.Since(at); d > Window || d < -Window {
		return "", nil, yibao.Errorf(yibao.CodeReplay, "message time %s is outside the ±%s window", at.UTC().Format(time.RFC3339), Window)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return "", nil, yibao.Wrap(yibao.CodeMalformed, err, "reading the body")
	}
	if len(body) > MaxBody {
		return "", nil, yibao.Errorf(yibao.CodeTooLarge, "a cross-region message is at most %d bytes", MaxBody)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !key.VerifyUID(uid, Canonical(r.Method, r.URL.Path, from, ts, nonce, body), raw) {
		return "", nil, yibao.Errorf(yibao.CodeBadSignature, "the signature of %s does not verify", from)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	if v.seen == nil {
		v.seen = map[string]time.Time{}
	}
	if len(v.seen) > 100000 {
		for k, t := range v.seen {
			if now.Sub(t) > 2*Window {
				delete(v.seen, k)
			}
		}
	}
	if _, dup := v.seen[from+"/"+nonce]; dup {
		return "", nil, yibao.Errorf(yibao.CodeReplay, "nonce %s of %s was seen before", nonce, from)
	}
	v.seen[from+"/"+nonce] = now
	return from, body, nil
}

// Client sends signed JSON messages.
type Client struct {
	Signer  *Signer
	HTTP    *http.Client
	Timeout time.Duration // per call; default 5 s
}

// errorBody is how a refusal travels.
type errorBody struct {
	Error struct {
		Code    yibao.Code `json:"code"`
		Message string     `json:"message"`
	} `json:"error"`
}

// Call posts in (JSON) to base+path and decodes the answer into out. A
// refusal comes back as a *yibao.Error with the receiver's code; a
// transport failure or timeout as CodeUnavailable.
func (c *Client) Call(ctx context.Context, base, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	t := c.Timeout
	if t == 0 {
		t = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := c.Signer.Sign(req, body); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return yibao.Wrap(yibao.CodeUnavailable, err, "cross-region peer "+base+" did not answer")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return yibao.Wrap(yibao.CodeUnavailable, err, "cross-region peer "+base+" broke off its answer")
	}
	if resp.StatusCode/100 != 2 {
		var e errorBody
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return &yibao.Error{Code: e.Error.Code, Message: e.Error.Message}
		}
		return yibao.Errorf(yibao.CodeUnavailable, "cross-region peer %s answered %d", base, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return yibao.Wrap(yibao.CodeUnavailable, err, fmt.Sprintf("cross-region peer %s answered unreadable JSON", base))
	}
	return nil
}

// Reply writes v as JSON, or err as a refusal with its stable code.
func Reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var e errorBody
		e.Error.Code, e.Error.Message = yibao.ErrorCode(err), yibao.ErrorMessage(err)
		w.WriteHeader(Status(e.Error.Code))
		json.NewEncoder(w).Encode(e)
		return
	}
	json.NewEncoder(w).Encode(v)
}

// Status maps an error code to its HTTP status.
func Status(c yibao.Code) int {
	switch c {
	case yibao.CodeInvalid, yibao.CodeMalformed:
		return http.StatusBadRequest
	case yibao.CodeUnauthenticated, yibao.CodeBadSignature, yibao.CodeReplay:
		return http.StatusUnauthorized
	case yibao.CodeForbidden:
		return http.StatusForbidden
	case yibao.CodeNotFound:
		return http.StatusNotFound
	case yibao.CodeConflict:
		return http.StatusConflict
	case yibao.CodePrecondition, yibao.CodeInsufficientFunds:
		return http.StatusUnprocessableEntity
	case yibao.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case yibao.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Decode reads a JSON body strictly (yibao.CheckJSON) into v.
func Decode(body []byte, v any) error {
	if err := yibao.CheckJSON(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return yibao.Wrap(yibao.CodeMalformed, err, "the message does not match its schema")
	}
	return nil
}

package bankapi

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"yibao/gmcrypto"
)

// Signature headers.
const (
	HeaderKey       = "X-Bank-Key"
	HeaderTimestamp = "X-Bank-Timestamp"
	HeaderNonce     = "X-Bank-Nonce"
	HeaderSignature = "X-Bank-Signature"
)

// Window is how far a message's timestamp may be from the receiver's clock.
const Window = 5 * time.Minute

// MaxBody is the largest message body either side reads.
const MaxBody = 16 << 20

func bodyHash(body []byte) string {
	h := gmcrypto.SM3(body)
	return hex.EncodeToString(h[:])
}

func requestCanonical(method, uri, ts, nonce string, body []byte) []byte {
	return []byte(method + "\n" + uri + "\n" + ts + "\n" + nonce + "\n" + bodyHash(body))
}

func responseCanonical(uri string, status int, ts, nonce string, body []byte) []byte {
	return []byte("RESPONSE\n" + uri + "\n" + strconv.Itoa(status) + "\n" + ts + "\n" + nonce + "\n" + bodyHash(body))
}

// requestURI is the request target as the client sent it: r.RequestURI on
// a server (unchanged by http.StripPrefix), the URL's on a client.
func requestURI(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

func newNonce() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func validNonce(n string) bool {
	if len(n) != 32 {
		return false
	}
	_, err := hex.DecodeString(n)
	return err == nil
}

// SignRequest sets the four signature headers on req, whose body is body
// (req.Body itself is not read). Sign after the URL is final.
func SignRequest(req *http.Request, body []byte, keyID string, key *gmcrypto.PrivateKey) error {
	if key == nil || keyID == "" {
		return fmt.Errorf("%w: no signing key", ErrNotSent)
	}
	nonce, err := newNonce()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig, err := key.Sign(requestCanonical(req.Method, req.URL.RequestURI(), ts, nonce, body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	req.Header.Set(HeaderKey, keyID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return nil
}

// VerifyRequest checks a received request whose body is body: the key id
// must be keyID, the timestamp within Window of now, the signature valid
// under pub, and the nonce unseen by nonces (which then records it; nil
// skips the replay check). Errors wrap ErrBadSignature, ErrStaleTimestamp
// or ErrReplayed; Refusal turns them into the answer to give.
func VerifyRequest(r *http.Request, body []byte, keyID string, pub *gmcrypto.PublicKey, now time.Time, nonces *NonceCache) error {
	if pub == nil {
		return fmt.Errorf("%w: no verification key configured", ErrBadSignature)
	}
	h := r.Header
	k, ts, nonce, sig64 := h.Get(HeaderKey), h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if k == "" || ts == "" || nonce == "" || sig64 == "" {
		return fmt.Errorf("%w: missing %s headers", ErrBadSignature, "X-Bank-*")
	}
	if k != keyID {
		return fmt.Errorf("%w: unknown key %q", ErrBadSignature, k)
	}
	if !validNonce(nonce) {
		return fmt.Errorf("%w: the nonce must be 32 hex characters", ErrBadSignature)
	}
	if err := checkTimestamp(ts, now); err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil || !pub.Verify(requestCanonical(r.Method, requestURI(r), ts, nonce, body), sig) {
		return fmt.Errorf("%w: the signature does not verify", ErrBadSignature)
	}
	if nonces != nil && !nonces.Add(k+"/"+nonce, now) {
		return fmt.Errorf("%w: nonce %s", ErrReplayed, nonce)
	}
	return nil
}

func checkTimestamp(ts string, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp %q", ErrBadSignature, ts)
	}
	d := now.Sub(time.Unix(sec, 0))
	if d > Window || d < -Window {
		return fmt.Errorf("%w: %s is %v from now", ErrStaleTimestamp, ts, d.Round(time.Second))
	}
	return nil
}

// SignResponse answers r with status and body, signed with key: the
// answer's X-Bank-Nonce echoes the request's nonce. It sets Content-Type
// to JSON unless already set.
func SignResponse(w http.ResponseWriter, r *http.Request, status int, body []byte, keyID string, key *gmcrypto.PrivateKey) {
	nonce := r.Header.Get(HeaderNonce)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	hd := w.Header()
	if key != nil {
		if sig, err := key.Sign(responseCanonical(requestURI(r), status, ts, nonce, body)); err == nil {
			hd.Set(HeaderKey, keyID)
			hd.Set(HeaderTimestamp, ts)
			hd.Set(HeaderNonce, nonce)
			hd.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
		}
	}
	if hd.Get("Content-Type") == "" && len(body) > 0 {
		hd.Set("Content-Type", "application/json")
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteJSON answers r with v encoded as JSON, signed.
func WriteJSON(w http.ResponseWriter, r *http.Request, status int, v any, keyID string, key *gmcrypto.PrivateKey) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"code":"INTERNAL","message":"cannot encode the answer"}`)
	}
	SignResponse(w, r, status, body, keyID, key)
}

// WriteError answers r with the refusal e, signed.
func WriteError(w http.ResponseWriter, r *http.Request, e *Error, keyID string, key *gmcrypto.PrivateKey) {
	WriteJSON(w, r, e.Status, e, keyID, key)
}

// verifyResponse checks an answer to a request signed with nonce.
func verifyResponse(resp *http.Response, uri, nonce string, body []byte, keyID string, pub *gmcrypto.PublicKey, now time.Time) error {
	if pub == nil {
		return fmt.Errorf("%w: no key to verify the answer", ErrBadSignature)
	}
	h := resp.Header
	k, ts, n, sig64 := h.Get(HeaderKey), h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature)
	if k == "" || ts == "" || sig64 == "" {
		return fmt.Errorf("%w: unsigned answer (HTTP %d)", ErrBadSignature, resp.StatusCode)
	}
	if k != keyID {
		return fmt.Errorf("%w: answer signed with unknown key %q", ErrBadSignature, k)
	}
	if n != nonce {
		return fmt.Errorf("%w: answer to another request (nonce %q)", ErrBadSignature, n)
	}
	if err := checkTimestamp(ts, now); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil || !pub.Verify(responseCanonical(uri, resp.StatusCode, ts, nonce, body), sig) {
		return fmt.Errorf("%w: the answer's signature does not verify (HTTP %d)", ErrBadSignature, resp.StatusCode)
	}
	return nil
}

// NonceCache remembers the nonces of accepted requests for a TTL so that
// a replay is refused. It is safe for concurrent use. Nonces are kept for
// TTL, at least twice Window (a shorter TTL would let a replay through
// within the timestamp window); the zero value is ready to use.
type NonceCache struct {
	TTL time.Duration

	mu        sync.Mutex
	seen      map[string]time.Time // nonce → expiry
	lastPrune time.Time
}

// NewNonceCache returns a cache keeping nonces for ttl (at least 2×Window).
func NewNonceCache(ttl time.Duration) *NonceCache { return &NonceCache{TTL: ttl} }

// Add records nonce at now and reports whether it was new.
func (c *NonceCache) Add(nonce string, now time.Time) bool {
	ttl := c.TTL
	if ttl < 2*Window {
		ttl = 2 * Window
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	if now.Sub(c.lastPrune) > ttl/4 {
		for n, exp := range c.seen {
			if now.After(exp) {
				delete(c.seen, n)
			}
		}
		c.lastPrune = now
	}
	if exp, ok := c.seen[nonce]; ok && !now.After(exp) {
		return false
	}
	c.seen[nonce] = now.Add(ttl)
	return true
}

// Len is the number of nonces remembered.
func (c *NonceCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

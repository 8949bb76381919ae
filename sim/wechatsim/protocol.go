package wechatsim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	authScheme  = "WECHATPAY2-SHA256-RSA2048"
	maxBody     = 1 << 20
	clockSkew   = 5 * time.Minute
	timeLayout  = time.RFC3339 // 2006-01-02T15:04:05+08:00 once in China time
	contentJSON = "application/json"
)

// chinaTime: WeChat's timestamps and bill dates are UTC+8.
var chinaTime = time.FixedZone("CST", 8*3600)

// reply is what a v3 handler answers; v3 encodes and signs it.
type reply struct {
	status int
	body   any  // JSON-encoded; nil: no body
	hang   bool // TimeoutNext: send nothing until the client gives up
}

// apiError is WeChat's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func ok(v any) reply   { return reply{status: http.StatusOK, body: v} }
func noContent() reply { return reply{status: http.StatusNoContent} }
func fail(status int, code, msg string) reply {
	return reply{status: status, body: apiError{Code: code, Message: msg}}
}
func paramError(msg string) reply { return fail(http.StatusBadRequest, "PARAM_ERROR", msg) }

// v3 wraps an API handler: it reads the body, verifies the request's
// signature, and encodes and signs the answer.
func (s *Sim) v3(h func(r *http.Request, body []byte) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			s.write(w, paramError("cannot read the request body"))
			return
		}
		if err := s.verify(r, body); err != nil {
			s.write(w, fail(http.StatusUnauthorized, "SIGN_ERROR", err.Error()))
			return
		}
		rep := h(r, body)
		if rep.hang {
			// The operation is done; the answer is withheld until the
			// client gives up (its context ends the request).
			select {
			case <-r.Context().Done():
				return
			case <-s.ctx.Done():
				rep = fail(http.StatusInternalServerError, "SYSTEMERROR", "simulator closed")
			}
		}
		s.write(w, rep)
	}
}

// verify checks the Authorization header:
//
//	WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",timestamp="..",serial_no="..",signature=".."
//
// The signature is SHA256withRSA (PKCS#1 v1.5) over
// "METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n", URL being the path and query
// as sent (the simulator's mount prefix already stripped).
func (s *Sim) verify(r *http.Request, body []byte) error {
	h := r.Header.Get("Authorization")
	rest, found := strings.CutPrefix(h, authScheme+" ")
	if !found {
		return errors.New("Authorization is not " + authScheme)
	}
	p := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		p[k] = strings.Trim(v, `"`)
	}
	switch {
	case p["mchid"] != s.cfg.MchID:
		return fmt.Errorf("mchid %q is not the simulator's merchant", p["mchid"])
	case p["serial_no"] != s.cfg.MerchantSerial:
		return fmt.Errorf("serial_no %q is not the merchant certificate's", p["serial_no"])
	case p["nonce_str"] == "" || p["signature"] == "":
		return errors.New("nonce_str or signature missing")
	}
	ts, err := strconv.ParseInt(p["timestamp"], 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := time.Since(time.Unix(ts, 0)); d > clockSkew || d < -clockSkew {
		return fmt.Errorf("timestamp %d is more than 5 minutes off", ts)
	}
	sig, err := base64.StdEncoding.DecodeString(p["signature"])
	if err != nil {
		return errors.New("signature is not base64")
	}
	msg := r.Method + "\n" + r.URL.RequestURI() + "\n" + p["timestamp"] + "\n" + p["nonce_str"] + "\n" + string(body) + "\n"
	sum := sha256.Sum256([]byte(msg))
	if s.cfg.MerchantKey == nil || rsa.VerifyPKCS1v15(s.cfg.MerchantKey, crypto.SHA256, sum[:], sig) != nil {
		return errors.New("signature verification failed")
	}
	return nil
}

// write encodes a reply and signs it with the platform key over
// "TIMESTAMP\nNONCE\nBODY\n" (an empty body for 204), as the SDK's
// response validator expects.
func (s *Sim) write(w http.ResponseWriter, rep reply) {
	var b []byte
	if rep.body != nil {
		var err error
		if b, err = json.Marshal(rep.body); err != nil {
			rep, b = fail(http.StatusInternalServerError, "SYSTEMERROR", "encoding"), []byte(`{"code":"SYSTEMERROR","message":"encoding"}`)
		}
		w.Header().Set("Content-Type", contentJSON)
	}
	s.signHeaders(w.Header(), b)
	w.Header().Set("Request-ID", randHex(16))
	w.WriteHeader(rep.status)
	_, _ = w.Write(b)
}

// signHeaders sets Wechatpay-Serial/-Timestamp/-Nonce/-Signature for body.
func (s *Sim) signHeaders(h http.Header, body []byte) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := randHex(16)
	h.Set("Wechatpay-Serial", s.cfg.PlatformSerial)
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Signature", s.sign(ts+"\n"+nonce+"\n"+string(body)+"\n"))
	h.Set("Wechatpay-Signature-Type", authScheme)
}

func (s *Sim) sign(msg string) string {
	sum := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.cfg.PlatformKey, crypto.SHA256, sum[:])
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// decode parses a JSON request body.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the body is not valid JSON: %v", err)
	}
	return nil
}

// checkMerchant checks the appid/mchid a request names.
func (s *Sim) checkMerchant(appid, mchid string) (reply, bool) {
	if mchid != s.cfg.MchID {
		return fail(http.StatusBadRequest, "MCH_NOT_EXISTS", "mchid is not the simulator's merchant"), false
	}
	if appid != s.cfg.AppID {
		return fail(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid is not bound to the merchant"), false
	}
	return reply{}, true
}

// validNo checks a merchant number (out_trade_no, out_refund_no, ...):
// 1..max characters of digits, letters and _-|*@.
func validNo(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', strings.ContainsRune("_-|*@", c):
		default:
			return false
		}
	}
	return true
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randString returns n random letters and digits.
func randString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// nextSeq returns a number unique within the simulator. Callers hold s.mu.
func (s *Sim) nextSeq() int64 {
	s.seq++
	return s.seq
}

// wxTime formats a time as WeChat does: RFC 3339 in China time.
func wxTime(t time.Time) string { return t.In(chinaTime).Format(timeLayout) }

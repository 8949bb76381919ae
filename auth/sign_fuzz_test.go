package auth_test

import (
	"context"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"yibao"
	"yibao/auth"
	"yibao/gmcrypto"
	"yibao/sqlstore/sqltest"
)

const (
	fuzzKeyID = "ak_fuzz0000000001"
	fuzzInst  = "H37010000001"
)

var (
	fuzzSecret = []byte("0123456789abcdef0123456789abcdef")
	fuzzNow    = time.Date(2026, 1, 10, 10, 0, 0, 0, time.UTC)
	nonceRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
)

// fuzzService is the auth service over a fresh database holding one
// contracted hospital with one HMAC-SM3 key.
func fuzzService(tb testing.TB) *auth.Service {
	db := sqltest.Open(tb)
	keys, err := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": []byte("0123456789abcdef")})
	if err != nil {
		tb.Fatal(err)
	}
	sealed, err := keys.Seal(fuzzSecret, []byte("api_key/"+fuzzKeyID))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO regions (admdvs, name, parent, created_at) VALUES ('370100', '济南市', NULL, 0)`, nil},
		{`INSERT INTO institutions (fixmedins_code, name, kind, level, admdvs, contract_status, created_at, updated_at)
			VALUES (?, '济南市第一人民医院', 'hospital', 3, '370100', 'active', 0, 0)`, []any{fuzzInst}},
		{`INSERT INTO api_keys (key_id, fixmedins_code, alg, secret_cipher, public_key, status, created_at)
			VALUES (?, ?, 'HMAC-SM3', ?, NULL, 'active', 0)`, []any{fuzzKeyID, fuzzInst, sealed}},
	} {
		if _, err := db.Exec(ctx, q.sql, q.args...); err != nil {
			tb.Fatal(err)
		}
	}
	s := auth.New(db, keys)
	s.SetClock(func() time.Time { return fuzzNow })
	return s
}

// FuzzVerifySigned feeds any key id, timestamp, nonce, signature, method,
// URI and body to the signed-request check (our X-Yibao-* headers, or the
// TIF gateway's when tif is set). sign replaces the signature with the
// right one; offset, when nonzero, replaces the timestamp with now +
// offset×10 s. Properties: no panic; a refusal is unauthenticated,
// bad_signature, replayed_request or permission_denied — never internal
// for a key id that is text;
// an acceptance names our key and institution and happened only with a
// well-formed nonce never accepted before, a timestamp within the window
// and the right signature; and a correctly signed, fresh, in-window
// request with a new well-formed nonce is accepted.
func FuzzVerifySigned(f *testing.F) {
	now := strconv.FormatInt(fuzzNow.Unix(), 10)
	f.Add(fuzzKeyID, now, "0123456789abcdef", "", "POST", "/api/v1/visits", []byte(`{"psn_no":"1"}`), true, false, int8(0))
	f.Add(fuzzKeyID, now, "0123456789abcdeg", "", "GET", "/api/v1/institutions/H37010000001?x=1", []byte(nil), true, true, int8(0))
	f.Add(fuzzKeyID, "", "0123456789abcdef", "00", "POST", "/", []byte("{}"), true, false, int8(31)) // 310 s late
	f.Add(fuzzKeyID, now, "short", "", "POST", "/", []byte("{}"), true, false, int8(0))
	f.Add(fuzzKeyID, "1e9", "0123456789abcdefX", "zz", "POST", "/", []byte("{}"), false, false, int8(0))
	f.Add(fuzzKeyID, "-9223372036854775808", "0123456789abcdefY", "", "POST", "/", []byte(nil), true, false, int8(0))
	f.Add(fuzzKeyID, "99999999999999999999", "0123456789abcdefZ", "", "POST", "/", []byte(nil), false, true, int8(0))
	f.Add("ak_unknown", now, "0123456789abcdef0", "", "POST", "/", []byte(nil), true, false, int8(0))
	f.Add("ak_fuzz0000000001' OR '1'='1", now, "0123456789abcdef1", "", "POST", "/", []byte(nil), true, false, int8(0))
	f.Add("", now, "0123456789abcdef2", "ab", "POST", "/", []byte(nil), false, false, int8(0))
	f.Add("ak_\xff\xfe", now, "0123456789abcdef4", "", "POST", "/", []byte(nil), true, false, int8(0)) // not UTF-8
	f.Add("ak_\xc0\xaf", now, "0123456789abcdef5", "", "POST", "/", []byte(nil), true, true, int8(0))
	f.Add(fuzzKeyID, now, "0123456789abcdef3", "ÀÁ", "POST", "/", []byte(nil), false, true, int8(-29))
	s := fuzzService(f)
	accepted := map[string]bool{} // nonces this process saw accepted, per scheme
	f.Fuzz(func(t *testing.T, keyID, ts, nonce, sig, method, uri string, body []byte, sign, tif bool, offset int8) {
		if offset != 0 {
			ts = strconv.FormatInt(fuzzNow.Unix()+int64(offset)*10, 10)
		}
		secret := fuzzSecret
		if tif {
			if sign {
				sig = auth.TIFSignature(ts, hex.EncodeToString(secret), nonce)
			}
		} else if sign {
			sig = hex.EncodeToString(gmcrypto.HMACSM3(secret, []byte(auth.CanonicalString(method, uri, ts, nonce, body))))
		}
		var p *yibao.Principal
		var err error
		if tif {
			p, err = s.VerifyTIF(context.Background(), keyID, ts, nonce, sig)
		} else {
			p, err = s.Verify(context.Background(), auth.SignedRequest{KeyID: keyID, Timestamp: ts, Nonce: nonce, Signature: sig,
				Method: method, RequestURI: uri, Body: body})
		}
		seenKey := strconv.FormatBool(tif) + "/" + nonce
		sec, perr := strconv.ParseInt(ts, 10, 64)
		inWindow := perr == nil && sec >= fuzzNow.Add(-s.Window).Unix() && sec <= fuzzNow.Add(s.Window).Unix()
		rightSig := false
		if tif {
			rightSig = sig == auth.TIFSignature(ts, hex.EncodeToString(secret), nonce)
		} else if b, err := hex.DecodeString(sig); err == nil {
			rightSig = gmcrypto.HMACEqual(b, gmcrypto.HMACSM3(secret, []byte(auth.CanonicalString(method, uri, ts, nonce, body))))
		}
		if err != nil {
			switch yibao.ErrorCode(err) {
			case yibao.CodeUnauthenticated, yibao.CodeBadSignature, yibao.CodeReplay, yibao.CodeForbidden:
			default:
				// A key id that is not UTF-8 text reaches the key lookup,
				// where PostgreSQL fails the query. The transport refuses
				// such header bytes first (httpapi.authenticate; see
				// httpapi's attack tests), so here it only has to be a
				// refusal.
				if utf8.ValidString(keyID) && !strings.ContainsRune(keyID, 0) {
					t.Fatalf("refusal with code %s: %v", yibao.ErrorCode(err), err)
				}
			}
			if keyID == fuzzKeyID && rightSig && inWindow && nonceRe.MatchString(nonce) && !accepted[seenKey] {
				t.Fatalf("a correct, fresh request was refused: %v", err)
			}
			return
		}
		if p == nil || p.Institution != fuzzInst || p.Subject != fuzzKeyID || keyID != fuzzKeyID {
			t.Fatalf("accepted as %+v for key %q", p, keyID)
		}
		if !nonceRe.MatchString(nonce) || !inWindow || !rightSig {
			t.Fatalf("accepted ts %q nonce %q sig %q (window %v, signature %v)", ts, nonce, sig, inWindow, rightSig)
		}
		if accepted[seenKey] {
			t.Fatalf("nonce %q accepted twice", nonce)
		}
		accepted[seenKey] = true
	})
}

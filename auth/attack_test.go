package auth_test

import (
	"bytes"
	"context"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/auth"
	"yibao/gmcrypto"
	"yibao/registry"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// Row X8 of the test matrix (reliability-security.md §8): signed
// requests — stale or future timestamps around the ±300 s window, reused
// nonces (also at once), anything altered after signing, wrong, unknown
// or revoked keys, HMAC-SM3 and SM2, channels, and the TIF gateway
// headers. Verify either returns a principal or refuses with a stable
// code; a refusal yields no principal, so nothing behind it runs (the
// HTTP side of that is httpapi's TestSignedRequestAttacksOverHTTP).

// x8Rounds is how many times K identical requests race for one nonce; a
// constant, so that -short runs the same figure.
const (
	x8Rounds = 50
	x8K      = 8
)

const (
	x8InstA, x8InstB, x8InstC = "H37010000001", "H37010000002", "H37010000003"
)

type x8Rig struct {
	t   *testing.T
	db  *sqlstore.DB
	svc *auth.Service
	reg *registry.Service
	now time.Time
	adm context.Context

	secretA, secretB, secretOld, secretC []byte
	sm2A, sm2Other, channel              *gmcrypto.PrivateKey
}

func newX8Rig(t *testing.T) *x8Rig {
	db := sqltest.Open(t)
	keys, err := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	r := &x8Rig{t: t, db: db, now: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC),
		secretA: bytes.Repeat([]byte{0xA1}, 32), secretB: bytes.Repeat([]byte{0xB2}, 32),
		secretOld: bytes.Repeat([]byte{0x01}, 32), secretC: bytes.Repeat([]byte{0xC3}, 32),
		sm2A: gmcrypto.DeterministicKey([]byte("his A sm2")), sm2Other: gmcrypto.DeterministicKey([]byte("someone else")),
		channel: gmcrypto.DeterministicKey([]byte("channel x"))}
	clock := func() time.Time { return r.now }
	r.adm = yibao.WithPrincipal(context.Background(), yibao.System("test"))
	r.reg = registry.New(db, keys, []byte("blind-index-key-for-tests-only!!"))
	r.reg.SetClock(clock)
	r.svc = auth.New(db, keys)
	r.svc.SetClock(clock)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.reg.CreateRegion(r.adm, yibao.Region{Admdvs: "370100", Name: "济南市"}))
	for _, code := range []string{x8InstA, x8InstB, x8InstC} {
		must(r.reg.CreateInstitution(r.adm, yibao.Institution{Code: code, Name: code, Kind: yibao.KindHospital, Level: 3, Admdvs: "370100"}))
	}
	must(r.svc.CreateAPIKey(r.adm, x8InstA, auth.AlgHMACSM3, "ak_a", r.secretA, nil))
	must(r.svc.CreateAPIKey(r.adm, x8InstB, auth.AlgHMACSM3, "ak_b", r.secretB, nil))
	must(r.svc.CreateAPIKey(r.adm, x8InstA, auth.AlgHMACSM3, "ak_a_old", r.secretOld, nil))
	must(r.svc.CreateAPIKey(r.adm, x8InstC, auth.AlgHMACSM3, "ak_c", r.secretC, nil))
	must(r.svc.CreateAPIKey(r.adm, x8InstA, auth.AlgSM2, "ak_a_sm2", nil, r.sm2A.Public().Bytes()))
	if err := r.svc.RevokeAPIKey(r.adm, x8InstA, "ak_a_old"); err != nil {
		t.Fatal(err)
	}
	must(r.reg.SetContractStatus(r.adm, x8InstC, yibao.ContractSuspended))
	for id, status := range map[string]string{"ch_x": "active", "ch_s": "suspended"} {
		if _, err := db.Exec(context.Background(), `INSERT INTO channels (channel_id, name, public_key, status, created_at) VALUES (?, ?, ?, ?, 0)`,
			id, id, r.channel.Public().Bytes(), status); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// x8Req is a request as the server sees it, before its signature headers
// are taken apart.
type x8Req struct {
	key, method, uri, ts, nonce string
	body                        []byte
}

var x8NonceSeq int

func (r *x8Rig) fresh(method, uri string, body []byte) x8Req {
	x8NonceSeq++
	return x8Req{key: "ak_a", method: method, uri: uri, ts: strconv.FormatInt(r.now.Unix(), 10),
		nonce: "n" + strconv.Itoa(x8NonceSeq) + strings.Repeat("0", 16), body: body}
}

// x8HMAC and x8SM2 sign a request the way auth.Signer does, but with
// every field under the test's control.
func x8HMAC(secret []byte, q x8Req) string {
	return hex.EncodeToString(gmcrypto.HMACSM3(secret, []byte(auth.CanonicalString(q.method, q.uri, q.ts, q.nonce, q.body))))
}

func x8SM2(t *testing.T, k *gmcrypto.PrivateKey, uid []byte, q x8Req) string {
	msg := []byte(auth.CanonicalString(q.method, q.uri, q.ts, q.nonce, q.body))
	var der []byte
	var err error
	if uid == nil {
		der, err = k.Sign(msg)
	} else {
		der, err = k.SignUID(uid, msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func (q x8Req) with(sig string) auth.SignedRequest {
	return auth.SignedRequest{KeyID: q.key, Timestamp: q.ts, Nonce: q.nonce, Signature: sig, Method: q.method, RequestURI: q.uri, Body: q.body}
}

// TestX8TimestampWindow: a request whose timestamp is within ±300 s of
// the server clock is accepted, the exact boundary included; one second
// beyond, either way, is replayed_request.
func TestX8TimestampWindow(t *testing.T) {
	r := newX8Rig(t)
	wrong := 0
	cases := []struct {
		offset time.Duration // request timestamp − server clock
		server time.Duration // sub-second part of the server clock
		accept bool
	}{
		{-time.Hour, 0, false}, {-301 * time.Second, 0, false}, {-300 * time.Second, 0, true}, {-299 * time.Second, 0, true},
		{0, 0, true},
		{299 * time.Second, 0, true}, {300 * time.Second, 0, true}, {301 * time.Second, 0, false}, {time.Hour, 0, false},
		// The header carries whole seconds: with the server 0.999 s into
		// its second, a timestamp 300 s back is 300.999 s old.
		{-300 * time.Second, 999 * time.Millisecond, false}, {300 * time.Second, 999 * time.Millisecond, true},
	}
	base := r.now
	for _, c := range cases {
		r.now = base
		q := r.fresh("GET", "/api/v1/visits", nil)
		q.ts = strconv.FormatInt(base.Add(c.offset).Unix(), 10)
		r.now = base.Add(c.server)
		p, err := r.svc.Verify(context.Background(), q.with(x8HMAC(r.secretA, q)))
		ok := err == nil && p != nil
		if ok != c.accept || (!ok && !yibao.IsCode(err, yibao.CodeReplay)) || (!ok && p != nil) {
			wrong++
			t.Errorf("timestamp %+v from a server clock +%s: %v (principal %v), want accepted=%v", c.offset, c.server, err, p, c.accept)
		}
		// TIF headers have the same window.
		x8NonceSeq++
		tn := "t" + strconv.Itoa(x8NonceSeq) + strings.Repeat("0", 16)
		_, err = r.svc.VerifyTIF(context.Background(), "ak_a", q.ts, tn, auth.TIFSignature(q.ts, hex.EncodeToString(r.secretA), tn))
		if (err == nil) != c.accept || (err != nil && !yibao.IsCode(err, yibao.CodeReplay)) {
			wrong++
			t.Errorf("TIF timestamp %+v from a server clock +%s: %v, want accepted=%v", c.offset, c.server, err, c.accept)
		}
	}
	t.Logf("X8 window: %d timestamps × (signed, TIF) around ±300 s (boundary inclusive, whole seconds): wrong answers %d", len(cases), wrong)
	if wrong != 0 {
		t.Fatal("X8 window failed")
	}
}

// TestX8ReusedNonce: a nonce is accepted once per key — in sequence and
// when K identical requests arrive at once — and only a verified
// signature uses it up.
func TestX8ReusedNonce(t *testing.T) {
	r := newX8Rig(t)
	ctx := context.Background()
	q := r.fresh("POST", "/api/v1/visits", []byte(`{"psn_no":"1"}`))
	sr := q.with(x8HMAC(r.secretA, q))
	if _, err := r.svc.Verify(ctx, sr); err != nil {
		t.Fatal(err)
	}
	replays := 0
	for range 3 {
		if _, err := r.svc.Verify(ctx, sr); err == nil {
			replays++
		} else if !yibao.IsCode(err, yibao.CodeReplay) {
			t.Errorf("replay: %v", err)
		}
	}
	// The same nonce under another key is that key's business.
	qb := q
	qb.key = "ak_b"
	if _, err := r.svc.Verify(ctx, qb.with(x8HMAC(r.secretB, qb))); err != nil {
		t.Errorf("B's first use of a nonce A used: %v", err)
	}
	// A forged request cannot burn a nonce: the genuine one still passes.
	qf := r.fresh("GET", "/api/v1/visits", nil)
	if _, err := r.svc.Verify(ctx, qf.with(strings.Repeat("0", 64))); !yibao.IsCode(err, yibao.CodeBadSignature) {
		t.Errorf("forged: %v", err)
	}
	if _, err := r.svc.Verify(ctx, qf.with(x8HMAC(r.secretA, qf))); err != nil {
		t.Errorf("the genuine request after a forgery with its nonce: %v", err)
	}
	// K at once, x8Rounds times, HMAC and SM2 alternately.
	doubles, lost, other := 0, 0, 0
	for round := range x8Rounds {
		q := r.fresh("POST", "/api/v1/visits/MD1/settle", []byte(`{"pay_mode":"cash"}`))
		sr := q.with(x8HMAC(r.secretA, q))
		if round%2 == 1 {
			q.key = "ak_a_sm2"
			sr = q.with(x8SM2(t, r.sm2A, nil, q))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		start := make(chan struct{})
		for range x8K {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := r.svc.Verify(ctx, sr)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case !yibao.IsCode(err, yibao.CodeReplay):
					other++
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		switch {
		case ok > 1:
			doubles++
		case ok == 0:
			lost++
		}
	}
	// TIF nonces likewise.
	ts := strconv.FormatInt(r.now.Unix(), 10)
	tn := "tifnonce" + strings.Repeat("0", 16)
	sig := auth.TIFSignature(ts, hex.EncodeToString(r.secretA), tn)
	if _, err := r.svc.VerifyTIF(ctx, "ak_a", ts, tn, sig); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.VerifyTIF(ctx, "ak_a", ts, tn, sig); err == nil {
		replays++
	} else if !yibao.IsCode(err, yibao.CodeReplay) {
		t.Errorf("TIF replay: %v", err)
	}
	t.Logf("X8 nonces: 4 sequential replays accepted %d; %d rounds × %d identical requests at once (HMAC-SM3 and SM2): double accepts %d, rounds with none accepted %d, other errors %d",
		replays, x8Rounds, x8K, doubles, lost, other)
	if replays != 0 || doubles != 0 || lost != 0 || other != 0 {
		t.Fatal("X8 nonces failed")
	}
}

// TestX8AlteredAndWrongKeys: anything changed after signing, and every
// wrong, unknown, revoked or suspended key, is refused with a stable code
// and no principal; the genuine requests pass.
func TestX8AlteredAndWrongKeys(t *testing.T) {
	r := newX8Rig(t)
	ctx := context.Background()
	body := []byte(`{"lines":[{"feedetl_sn":"1","catalog_code":"X","unit_price":"10.00","quantity":"1"}]}`)
	const uri = "/api/v1/visits/MD1/fee-lines?limit=5&psn_no=1"
	type tc struct {
		name string
		sr   func() auth.SignedRequest
		want yibao.Code // "" accepted
	}
	hm := func(mut func(q *x8Req)) func() auth.SignedRequest {
		return func() auth.SignedRequest {
			q := r.fresh("POST", uri, body)
			sig := x8HMAC(r.secretA, q)
			if mut != nil {
				mut(&q)
			}
			return q.with(sig)
		}
	}
	sm := func(key string, k *gmcrypto.PrivateKey, uid []byte, mut func(q *x8Req)) func() auth.SignedRequest {
		return func() auth.SignedRequest {
			q := r.fresh("POST", uri, body)
			q.key = key
			sig := x8SM2(t, k, uid, q)
			if mut != nil {
				mut(&q)
			}
			return q.with(sig)
		}
	}
	raw := func(f func(q *x8Req) string) func() auth.SignedRequest {
		return func() auth.SignedRequest {
			q := r.fresh("POST", uri, body)
			s := f(&q)
			return q.with(s)
		}
	}
	cases := []tc{
		{"genuine HMAC-SM3", hm(nil), ""},
		{"genuine SM2", sm("ak_a_sm2", r.sm2A, nil, nil), ""},
		{"genuine channel (SM2)", sm("ch_x", r.channel, nil, nil), ""},
		{"body: one byte changed", hm(func(q *x8Req) { q.body = bytes.Replace(q.body, []byte("10.00"), []byte("90.00"), 1) }), yibao.CodeBadSignature},
		{"body: appended", hm(func(q *x8Req) { q.body = append(append([]byte(nil), q.body...), ' ') }), yibao.CodeBadSignature},
		{"body: removed", hm(func(q *x8Req) { q.body = nil }), yibao.CodeBadSignature},
		{"method changed", hm(func(q *x8Req) { q.method = "PUT" }), yibao.CodeBadSignature},
		{"path: another visit", hm(func(q *x8Req) { q.uri = strings.Replace(q.uri, "MD1", "MD2", 1) }), yibao.CodeBadSignature},
		{"path: another action", hm(func(q *x8Req) { q.uri = strings.Replace(q.uri, "fee-lines", "settle", 1) }), yibao.CodeBadSignature},
		{"query: value changed", hm(func(q *x8Req) { q.uri = strings.Replace(q.uri, "limit=5", "limit=6", 1) }), yibao.CodeBadSignature},
		{"query: parameter added", hm(func(q *x8Req) { q.uri += "&fixmedins_code=H37010000002" }), yibao.CodeBadSignature},
		{"query: parameters reordered", hm(func(q *x8Req) { q.uri = "/api/v1/visits/MD1/fee-lines?psn_no=1&limit=5" }), yibao.CodeBadSignature},
		{"query: removed", hm(func(q *x8Req) { q.uri = "/api/v1/visits/MD1/fee-lines" }), yibao.CodeBadSignature},
		{"timestamp moved 1 s (still in the window)", hm(func(q *x8Req) { q.ts = strconv.FormatInt(r.now.Unix()-1, 10) }), yibao.CodeBadSignature},
		{"nonce changed", hm(func(q *x8Req) { q.nonce = "x" + q.nonce }), yibao.CodeBadSignature},
		{"signature: one hex digit changed", raw(func(q *x8Req) string { s := x8HMAC(r.secretA, *q); return x8FlipHex(s) }), yibao.CodeBadSignature},
		{"signature: truncated", raw(func(q *x8Req) string { return x8HMAC(r.secretA, *q)[:62] }), yibao.CodeBadSignature},
		{"signature: empty", raw(func(q *x8Req) string { return "" }), yibao.CodeUnauthenticated},
		{"signed with another secret", raw(func(q *x8Req) string { return x8HMAC(r.secretB, *q) }), yibao.CodeBadSignature},
		{"A's signature under B's key id", raw(func(q *x8Req) string { s := x8HMAC(r.secretA, *q); q.key = "ak_b"; return s }), yibao.CodeBadSignature},
		{"unknown key id", raw(func(q *x8Req) string { q.key = "ak_nobody"; return x8HMAC(r.secretA, *q) }), yibao.CodeUnauthenticated},
		{"revoked key, genuine signature", raw(func(q *x8Req) string { q.key = "ak_a_old"; return x8HMAC(r.secretOld, *q) }), yibao.CodeUnauthenticated},
		{"suspended institution, genuine signature", raw(func(q *x8Req) string { q.key = "ak_c"; return x8HMAC(r.secretC, *q) }), yibao.CodeForbidden},
		{"SM2: another key", sm("ak_a_sm2", r.sm2Other, nil, nil), yibao.CodeBadSignature},
		{"SM2: the e-certificate code's user ID", sm("ak_a_sm2", r.sm2A, []byte("YBECERT-CODE-V1"), nil), yibao.CodeBadSignature},
		{"SM2: body changed", sm("ak_a_sm2", r.sm2A, nil, func(q *x8Req) { q.body = []byte(`{}`) }), yibao.CodeBadSignature},
		{"SM2: s replaced by n−s", raw(func(q *x8Req) string {
			q.key = "ak_a_sm2"
			return x8Malleate(t, x8SM2(t, r.sm2A, nil, *q))
		}), yibao.CodeBadSignature},
		{"SM2: not base64", raw(func(q *x8Req) string { q.key = "ak_a_sm2"; return "%%%" }), yibao.CodeBadSignature},
		{"an HMAC signature for the SM2 key", raw(func(q *x8Req) string { q.key = "ak_a_sm2"; return x8HMAC(r.secretA, *q) }), yibao.CodeBadSignature},
		{"an SM2 signature (by the registered key) for the HMAC key", raw(func(q *x8Req) string { return x8SM2(t, r.sm2A, nil, *q) }), yibao.CodeBadSignature},
		{"channel: another key", sm("ch_x", r.sm2A, nil, nil), yibao.CodeBadSignature},
		{"suspended channel, genuine signature", sm("ch_s", r.channel, nil, nil), yibao.CodeForbidden},
		{"nonce too short", raw(func(q *x8Req) string { q.nonce = "abc"; return x8HMAC(r.secretA, *q) }), yibao.CodeUnauthenticated},
		{"timestamp not a number", raw(func(q *x8Req) string { q.ts = "2026-11-23T02:00:00Z"; return x8HMAC(r.secretA, *q) }), yibao.CodeUnauthenticated},
	}
	accepted, wrong := 0, 0
	for _, c := range cases {
		p, err := r.svc.Verify(ctx, c.sr())
		if c.want == "" {
			if err != nil || p == nil {
				wrong++
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || p != nil {
			accepted++
			t.Errorf("%s: accepted as %+v", c.name, p)
		} else if !yibao.IsCode(err, c.want) {
			wrong++
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	// The TIF gateway headers.
	ts := strconv.FormatInt(r.now.Unix(), 10)
	tif := func(name, paasid, secretHex string, want yibao.Code) {
		t.Helper()
		x8NonceSeq++
		n := "tif" + strconv.Itoa(x8NonceSeq) + strings.Repeat("0", 16)
		_, err := r.svc.VerifyTIF(ctx, paasid, ts, n, auth.TIFSignature(ts, secretHex, n))
		switch {
		case want == "" && err != nil:
			wrong++
			t.Errorf("TIF %s: %v", name, err)
		case want != "" && err == nil:
			accepted++
			t.Errorf("TIF %s: accepted", name)
		case want != "" && !yibao.IsCode(err, want):
			wrong++
			t.Errorf("TIF %s: %v, want %s", name, err, want)
		}
	}
	tif("genuine", "ak_a", hex.EncodeToString(r.secretA), "")
	tif("another secret", "ak_a", hex.EncodeToString(r.secretB), yibao.CodeBadSignature)
	tif("revoked key", "ak_a_old", hex.EncodeToString(r.secretOld), yibao.CodeUnauthenticated)
	tif("suspended institution", "ak_c", hex.EncodeToString(r.secretC), yibao.CodeForbidden)
	tif("an SM2 key as paasid", "ak_a_sm2", hex.EncodeToString(r.secretA), yibao.CodeUnauthenticated)
	tif("unknown paasid", "ak_nobody", hex.EncodeToString(r.secretA), yibao.CodeUnauthenticated)
	tif("a channel as paasid", "ch_x", hex.EncodeToString(r.secretA), yibao.CodeUnauthenticated)
	t.Logf("X8 alterations and keys: %d signed-request cases + 7 TIF cases: forged or altered accepted %d, wrong codes %d "+
		"(the TIF signature covers timestamp and nonce only — method, path and body rest on TLS, by that gateway's design)", len(cases), accepted, wrong)
	if accepted != 0 || wrong != 0 {
		t.Fatal("X8 failed")
	}
}

func x8FlipHex(s string) string {
	c := byte('0')
	if s[10] == '0' {
		c = '1'
	}
	return s[:10] + string(c) + s[11:]
}

// x8Malleate turns a base64 DER SM2 signature (r, s) into (r, n−s).
func x8Malleate(t *testing.T, sig string) string {
	der, _ := base64.StdEncoding.DecodeString(sig)
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		t.Fatal(err)
	}
	n, _ := new(big.Int).SetString("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
	rs.S.Sub(n, rs.S)
	out, _ := asn1.Marshal(rs)
	return base64.StdEncoding.EncodeToString(out)
}

// TestX8NonceAfterClockJump (R18 for nonces): the server clock jumps
// forward an hour — nonces older than two windows are forgotten then —
// and comes back; requests captured just before the jump (signed and TIF)
// are replayed, and refused.
func TestX8NonceAfterClockJump(t *testing.T) {
	r := newX8Rig(t)
	ctx := context.Background()
	t0 := r.now
	captured := r.fresh("GET", "/api/v1/visits", nil)
	sr := captured.with(x8HMAC(r.secretA, captured))
	if _, err := r.svc.Verify(ctx, sr); err != nil {
		t.Fatal(err)
	}
	tifTS, tifNonce := strconv.FormatInt(t0.Unix(), 10), "tifcaptured"+strings.Repeat("0", 16)
	tifSig := auth.TIFSignature(tifTS, hex.EncodeToString(r.secretA), tifNonce)
	if _, err := r.svc.VerifyTIF(ctx, "ak_a", tifTS, tifNonce, tifSig); err != nil {
		t.Fatal(err)
	}
	r.now = t0.Add(time.Hour)
	q := r.fresh("GET", "/api/v1/visits", nil) // a client whose clock is as wrong
	if _, err := r.svc.Verify(ctx, q.with(x8HMAC(r.secretA, q))); err != nil {
		t.Fatal(err)
	}
	r.now = t0.Add(10 * time.Second)
	replayed := 0
	if _, err := r.svc.Verify(ctx, sr); err == nil {
		replayed++
		t.Error("a captured request was accepted again after the clock went forward and back")
	} else if !yibao.IsCode(err, yibao.CodeReplay) {
		t.Errorf("replay after the jump: %v", err)
	}
	if _, err := r.svc.VerifyTIF(ctx, "ak_a", tifTS, tifNonce, tifSig); err == nil {
		replayed++
		t.Error("captured TIF headers were accepted again after the clock went forward and back")
	} else if !yibao.IsCode(err, yibao.CodeReplay) {
		t.Errorf("TIF replay after the jump: %v", err)
	}
	// Usable again once past the forgotten requests' window.
	r.now = t0.Add(5*time.Minute + 2*time.Second)
	q = r.fresh("GET", "/api/v1/visits", nil)
	if _, err := r.svc.Verify(ctx, q.with(x8HMAC(r.secretA, q))); err != nil {
		t.Errorf("a fresh request after the clock came back: %v", err)
	}
	t.Logf("R18/X8: server clock +1 h then back: captured requests (signed, TIF) accepted again %d of 2", replayed)
	if replayed != 0 {
		t.Fatal("R18/X8 failed")
	}
}

package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// Signed-request headers. An institution system signs every request with
// its key; see docs/api.md for the canonical string.
const (
	HeaderKey       = "X-Yibao-Key"
	HeaderTimestamp = "X-Yibao-Timestamp" // unix seconds
	HeaderNonce     = "X-Yibao-Nonce"     // 16–64 of [A-Za-z0-9_-], never reused by a key
	HeaderSignature = "X-Yibao-Signature" // HMAC-SM3: lower-case hex; SM2: base64 of the DER signature
)

// Key algorithms.
const (
	AlgHMACSM3 = "HMAC-SM3"
	AlgSM2     = "SM2"
)

var nonceRe = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

var keyIDRe = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

// CanonicalString is what a signed request signs:
//
//	METHOD \n REQUEST-URI \n TIMESTAMP \n NONCE \n hex(SM3(body))
//
// REQUEST-URI is the path with its raw query exactly as sent.
func CanonicalString(method, requestURI, timestamp, nonce string, body []byte) string {
	h := gmcrypto.SM3(body)
	return method + "\n" + requestURI + "\n" + timestamp + "\n" + nonce + "\n" + hex.EncodeToString(h[:])
}

// Signer signs outgoing requests for one key; it is what an institution's
// HIS (and our tests and simulators) use.
type Signer struct {
	KeyID  string
	Secret []byte               // for HMAC-SM3
	SM2    *gmcrypto.PrivateKey // for SM2
	Now    func() time.Time
}

// Sign sets the four signature headers on req for body.
func (sg *Signer) Sign(req *http.Request, body []byte) error {
	now := time.Now
	if sg.Now != nil {
		now = sg.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	nb := make([]byte, 16)
	rand.Read(nb)
	nonce := hex.EncodeToString(nb)
	msg := []byte(CanonicalString(req.Method, req.URL.RequestURI(), ts, nonce, body))
	var sig string
	if sg.SM2 != nil {
		b, err := sg.SM2.Sign(msg)
		if err != nil {
			return err
		}
		sig = base64.StdEncoding.EncodeToString(b)
	} else {
		sig = hex.EncodeToString(gmcrypto.HMACSM3(sg.Secret, msg))
	}
	req.Header.Set(HeaderKey, sg.KeyID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, sig)
	return nil
}

// SignedRequest is what the server extracted from a request.
type SignedRequest struct {
	KeyID, Timestamp, Nonce, Signature string
	Method, RequestURI                 string
	Body                               []byte
}

// IsSigned reports whether r carries a key header.
func IsSigned(r *http.Request) bool { return r.Header.Get(HeaderKey) != "" }

// FromRequest collects the signature fields of r with its already-read body.
func FromRequest(r *http.Request, body []byte) SignedRequest {
	return SignedRequest{KeyID: r.Header.Get(HeaderKey), Timestamp: r.Header.Get(HeaderTimestamp),
		Nonce: r.Header.Get(HeaderNonce), Signature: r.Header.Get(HeaderSignature),
		Method: r.Method, RequestURI: r.URL.RequestURI(), Body: body}
}

// Verify checks a signed request: known active key of a contracted
// institution, timestamp within the window, valid signature, and a nonce
// never seen for this key. Errors: unauthenticated, bad_signature,
// replayed_request.
func (s *Service) Verify(ctx context.Context, sr SignedRequest) (*yibao.Principal, error) {
	p, nw, err := s.VerifyLater(ctx, sr)
	if err == nil {
		err = s.db.WriteTx(ctx, nw.Record)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// NonceWrite records a verified request's nonce.
type NonceWrite struct {
	s            *Service
	keyID, nonce string
	ts           int64
	now          time.Time
}

// Record stores the nonce in tx. A nonce seen before is replayed_request.
func (nw *NonceWrite) Record(tx *sqlstore.Tx) error {
	ctx := context.Background()
	until, err := forgottenUntil(ctx, tx)
	if err != nil {
		return err
	}
	if err := nw.s.mayBeForgotten(nw.ts, until); err != nil {
		return err
	}
	if err := nw.s.forgetOldNonces(ctx, tx, nw.now, until); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES (?, ?, ?)`, nw.keyID, nw.nonce, nw.now.UnixMicro())
	if sqlstore.IsUniqueViolation(err) {
		return yibao.Errorf(yibao.CodeReplay, "this nonce was already used; every request needs a new one")
	}
	return err
}

// VerifyLater is Verify without recording the nonce: the caller must run
// the returned NonceWrite's Record inside a write transaction of its own
// (and refuse the request if it fails) before acting on the request. It
// lets the HTTP layer record the nonce in the same commit as the
// request's idempotency reservation, one durable commit instead of two.
func (s *Service) VerifyLater(ctx context.Context, sr SignedRequest) (*yibao.Principal, *NonceWrite, error) {
	if sr.KeyID == "" || sr.Timestamp == "" || sr.Nonce == "" || sr.Signature == "" {
		return nil, nil, yibao.Errorf(yibao.CodeUnauthenticated, "signed requests need %s, %s, %s and %s", HeaderKey, HeaderTimestamp, HeaderNonce, HeaderSignature)
	}
	if !nonceRe.MatchString(sr.Nonce) {
		return nil, nil, yibao.Errorf(yibao.CodeUnauthenticated, "%s must be 16–64 letters, digits, '_' or '-'", HeaderNonce)
	}
	if !keyIDRe.MatchString(sr.KeyID) {
		// Never hand arbitrary bytes to the key lookup (PostgreSQL refuses
		// invalid UTF-8 with an error, not a miss).
		return nil, nil, yibao.Errorf(yibao.CodeUnauthenticated, "%s must be 1–128 printable ASCII characters", HeaderKey)
	}
	ts, err := strconv.ParseInt(sr.Timestamp, 10, 64)
	if err != nil {
		return nil, nil, yibao.Errorf(yibao.CodeUnauthenticated, "%s must be unix seconds", HeaderTimestamp)
	}
	now := s.now()
	if d := now.Sub(time.Unix(ts, 0)); d > s.Window || d < -s.Window {
		return nil, nil, yibao.Errorf(yibao.CodeReplay, "the request timestamp is %s away from the server clock (window ±%s)", d.Round(time.Second), s.Window)
	}
	var code, alg, status, display string
	var secretC, pub []byte
	var contract string
	err = s.db.QueryRow(ctx, `SELECT k.fixmedins_code, k.alg, k.secret_cipher, k.public_key, k.status, i.name, i.contract_status
		FROM api_keys k JOIN institutions i ON i.fixmedins_code = k.fixmedins_code WHERE k.key_id = ?`, sr.KeyID).
		Scan(&code, &alg, &secretC, &pub, &status, &display, &contract)
	channel := false
	if err == sql.ErrNoRows {
		// Not an institution key: maybe an e-certificate channel, which
		// always signs with SM2.
		err = s.db.QueryRow(ctx, `SELECT name, public_key, status FROM channels WHERE channel_id = ?`, sr.KeyID).Scan(&display, &pub, &status)
		channel, alg, contract = err == nil, AlgSM2, string(yibao.ContractActive)
		if err == nil && status == "suspended" {
			return nil, nil, yibao.Errorf(yibao.CodeForbidden, "channel %s is suspended", sr.KeyID)
		}
	}
	if err == sql.ErrNoRows || (err == nil && status != "active") {
		return nil, nil, yibao.Errorf(yibao.CodeUnauthenticated, "unknown or revoked key %q", sr.KeyID)
	}
	if err != nil {
		return nil, nil, err
	}
	msg := []byte(CanonicalString(sr.Method, sr.RequestURI, sr.Timestamp, sr.Nonce, sr.Body))
	valid := false
	switch alg {
	case AlgHMACSM3:
		secret, err := s.keys.Open(secretC, []byte("api_key/"+sr.KeyID))
		if err != nil {
			return nil, nil, yibao.Wrap(yibao.CodeInternal, err, "key material could not be decrypted")
		}
		got, err := hex.DecodeString(sr.Signature)
		valid = err == nil && gmcrypto.HMACEqual(got, gmcrypto.HMACSM3(secret, msg))
	case AlgSM2:
		pk, err := gmcrypto.ParsePublicKey(pub)
		if err != nil {
			return nil, nil, yibao.Wrap(yibao.CodeInternal, err, "stored public key is invalid")
		}
		sig, err := base64.StdEncoding.DecodeString(sr.Signature)
		valid = err == nil && pk.Verify(msg, sig)
	}
	if !valid {
		return nil, nil, yibao.Errorf(yibao.CodeBadSignature, "the signature does not match the request")
	}
	if contract != string(yibao.ContractActive) {
		return nil, nil, yibao.Errorf(yibao.CodeForbidden, "institution %s's agreement is %s", code, contract)
	}
	// The nonce is recorded only for a valid signature, so nobody can burn
	// another key's nonces.
	nw := &NonceWrite{s: s, keyID: sr.KeyID, nonce: sr.Nonce, ts: ts, now: now}
	if channel {
		return &yibao.Principal{Kind: yibao.PrincipalChannel, Subject: sr.KeyID, Role: yibao.RoleChannel, DisplayName: display}, nw, nil
	}
	return &yibao.Principal{Kind: yibao.PrincipalAPIKey, Subject: sr.KeyID, Role: yibao.RoleHIS, Institution: code, DisplayName: display}, nw, nil
}

// APIKey is an institution credential. Secret is shown once, at creation.
type APIKey struct {
	KeyID         string    `json:"key_id"`
	FixmedinsCode string    `json:"fixmedins_code"`
	Alg           string    `json:"alg"`
	Secret        string    `json:"secret,omitempty"`     // hex, HMAC-SM3 keys only, only in the create response
	PublicKey     string    `json:"public_key,omitempty"` // hex of the SM2 point, SM2 keys only
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
}

// CreateAPIKey issues a key for an institution: an HMAC-SM3 secret made
// here (returned once), or registration of the institution's own SM2 public
// key (we never see its private key). keyID may be empty to generate one;
// secret may be given for seeded demo data. Errors: invalid_argument,
// conflict, permission_denied.
func (s *Service) CreateAPIKey(ctx context.Context, fixmedinsCode, alg, keyID string, secret, sm2Public []byte) (*APIKey, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if keyID == "" {
		b := make([]byte, 8)
		rand.Read(b)
		keyID = "ak_" + hex.EncodeToString(b)
	}
	k := &APIKey{KeyID: keyID, FixmedinsCode: fixmedinsCode, Alg: alg, Status: "active", CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	var secretC, pub []byte
	switch alg {
	case AlgHMACSM3:
		if secret == nil {
			secret = make([]byte, 32)
			rand.Read(secret)
		}
		if len(secret) < 16 {
			return nil, yibao.FieldError("secret", "must be at least 16 bytes")
		}
		var err error
		if secretC, err = s.keys.Seal(secret, []byte("api_key/"+keyID)); err != nil {
			return nil, err
		}
		k.Secret = hex.EncodeToString(secret)
	case AlgSM2:
		pk, err := gmcrypto.ParsePublicKey(sm2Public)
		if err != nil {
			return nil, yibao.FieldError("public_key", "must be an SM2 public key: 65-byte uncompressed point, hex")
		}
		pub = pk.Bytes()
		k.PublicKey = hex.EncodeToString(pub)
	default:
		return nil, yibao.FieldError("alg", "must be HMAC-SM3 or SM2")
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM institutions WHERE fixmedins_code = ?`, fixmedinsCode).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return yibao.Errorf(yibao.CodeNotFound, "institution %s not found", fixmedinsCode)
		}
		_, err := tx.Exec(ctx, `INSERT INTO api_keys (key_id, fixmedins_code, alg, secret_cipher, public_key, status, created_at)
			VALUES (?, ?, ?, ?, ?, 'active', ?)`, keyID, fixmedinsCode, alg, secretC, pub, k.CreatedAt.UnixMicro())
		if sqlstore.IsUniqueViolation(err) {
			return yibao.Errorf(yibao.CodeConflict, "key %s already exists", keyID)
		}
		if err != nil {
			return err
		}
		return s.keyEntry(ctx, tx, fixmedinsCode, keyID, "issued", alg, pub)
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// RevokeAPIKey stops a key at once. Errors: not_found, permission_denied.
func (s *Service) RevokeAPIKey(ctx context.Context, fixmedinsCode, keyID string) error {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE api_keys SET status = 'revoked' WHERE key_id = ? AND fixmedins_code = ?`, keyID, fixmedinsCode)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return yibao.Errorf(yibao.CodeNotFound, "key %s of institution %s not found", keyID, fixmedinsCode)
		}
		return s.keyEntry(ctx, tx, fixmedinsCode, keyID, "revoked", "", nil)
	})
}

// keyEntry records a key change in the audit trail, in its transaction:
// who issued or revoked which key of which institution, and the SM3 of an
// SM2 public key (never a secret).
func (s *Service) keyEntry(ctx context.Context, tx *sqlstore.Tx, code, keyID, what, alg string, pub []byte) error {
	data := map[string]any{"fixmedins_code": code, "key_id": keyID, "change": what}
	if alg != "" {
		data["alg"] = alg
	}
	if len(pub) > 0 {
		sum := gmcrypto.SM3(pub)
		data["public_key_sm3"] = hex.EncodeToString(sum[:])
	}
	actor := ""
	if p := yibao.PrincipalFrom(ctx); p != nil {
		actor = p.ID()
	}
	now := s.now()
	return s.Audit.Record(ctx, tx, audit.Entry{ID: "key:" + keyID + ":" + what + ":" + strconv.FormatInt(now.UnixMicro(), 10), Kind: audit.KindKey,
		At: audit.Stamp(now), Actor: actor, Subject: code + "/" + keyID, Data: data})
}

// APIKeys lists an institution's keys without secrets; administrators, or
// the institution's own staff.
func (s *Service) APIKeys(ctx context.Context, fixmedinsCode string) ([]APIKey, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.ActsFor(fixmedinsCode) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "you may only list your own institution's keys")
	}
	rows, err := s.db.Query(ctx, `SELECT key_id, fixmedins_code, alg, public_key, status, created_at FROM api_keys WHERE fixmedins_code = ? ORDER BY key_id`, fixmedinsCode)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []APIKey{}
	for rows.Next() {
		var k APIKey
		var pub []byte
		var at int64
		if err := rows.Scan(&k.KeyID, &k.FixmedinsCode, &k.Alg, &pub, &k.Status, &at); err != nil {
			return nil, err
		}
		k.PublicKey = strings.ToLower(hex.EncodeToString(pub))
		k.CreatedAt = time.UnixMicro(at).UTC()
		list = append(list, k)
	}
	return list, rows.Err()
}

// TIF gateway headers (the Tencent gateway many provinces put in front of
// the national interface): x-tif-paasid names the institution key (an
// HMAC-SM3 key's id), x-tif-signature is lower-case hex SHA-256 of
// timestamp + secret + nonce + timestamp, the secret written as its hex.
const (
	HeaderTIFPaasid    = "X-Tif-Paasid"
	HeaderTIFTimestamp = "X-Tif-Timestamp"
	HeaderTIFNonce     = "X-Tif-Nonce"
	HeaderTIFSignature = "X-Tif-Signature"
)

// TIFSignature computes the gateway signature.
func TIFSignature(timestamp, secretHex, nonce string) string {
	h := sha256.Sum256([]byte(timestamp + secretHex + nonce + timestamp))
	return hex.EncodeToString(h[:])
}

// VerifyTIF checks TIF gateway headers like Verify checks our own: known
// active HMAC key of a contracted institution, timestamp within the
// window, matching signature, unused nonce.
func (s *Service) VerifyTIF(ctx context.Context, paasid, timestamp, nonce, signature string) (*yibao.Principal, error) {
	if paasid == "" || timestamp == "" || nonce == "" || signature == "" {
		return nil, yibao.Errorf(yibao.CodeUnauthenticated, "TIF requests need x-tif-paasid, x-tif-timestamp, x-tif-nonce and x-tif-signature")
	}
	if !nonceRe.MatchString(nonce) {
		return nil, yibao.Errorf(yibao.CodeUnauthenticated, "x-tif-nonce must be 16–64 letters, digits, '_' or '-'")
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return nil, yibao.Errorf(yibao.CodeUnauthenticated, "x-tif-timestamp must be unix seconds")
	}
	now := s.now()
	if d := now.Sub(time.Unix(ts, 0)); d > s.Window || d < -s.Window {
		return nil, yibao.Errorf(yibao.CodeReplay, "x-tif-timestamp is %s away from the server clock (window ±%s)", d.Round(time.Second), s.Window)
	}
	var code, alg, status, display, contract string
	var secretC []byte
	err = s.db.QueryRow(ctx, `SELECT k.fixmedins_code, k.alg, k.secret_cipher, k.status, i.name, i.contract_status
		FROM api_keys k JOIN institutions i ON i.fixmedins_code = k.fixmedins_code WHERE k.key_id = ?`, paasid).
		Scan(&code, &alg, &secretC, &status, &display, &contract)
	if err == sql.ErrNoRows || (err == nil && (status != "active" || alg != AlgHMACSM3)) {
		return nil, yibao.Errorf(yibao.CodeUnauthenticated, "unknown, revoked or non-HMAC key %q", paasid)
	}
	if err != nil {
		return nil, err
	}
	secret, err := s.keys.Open(secretC, []byte("api_key/"+paasid))
	if err != nil {
		return nil, yibao.Wrap(yibao.CodeInternal, err, "key material could not be decrypted")
	}
	if !gmcrypto.HMACEqual([]byte(signature), []byte(TIFSignature(timestamp, hex.EncodeToString(secret), nonce))) {
		return nil, yibao.Errorf(yibao.CodeBadSignature, "x-tif-signature does not match")
	}
	if contract != string(yibao.ContractActive) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "institution %s's agreement is %s", code, contract)
	}
	until, err := forgottenUntil(ctx, s.db)
	if err != nil {
		return nil, err
	}
	if err := s.mayBeForgotten(ts, until); err != nil {
		return nil, err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES (?, ?, ?)`, "tif:"+paasid, nonce, now.UnixMicro())
	if sqlstore.IsUniqueViolation(err) {
		return nil, yibao.Errorf(yibao.CodeReplay, "this x-tif-nonce was already used")
	}
	if err != nil {
		return nil, err
	}
	return &yibao.Principal{Kind: yibao.PrincipalAPIKey, Subject: paasid, Role: yibao.RoleHIS, Institution: code, DisplayName: display}, nil
}

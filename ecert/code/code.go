// Package code is the e-certificate's dynamic QR code: its byte layout,
// its text form, how a device makes one and how anyone holding the
// trusted platform keys checks one — offline, with no database. The
// format is specified byte by byte in docs/ecert.md.
//
// Trust chain: a national root key certifies each region platform's key
// (PlatformCert); a platform key certifies a device's key (the credential
// inside every code); the device signs each code. A code therefore carries
// everything needed to check it except the platform keys.
package code

import (
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/gmcrypto"
)

// Sizes of the version-1 layout.
const (
	Version        = 1
	Prefix         = "YB1:"
	CertIDLen      = 12
	credTBSLen     = 1 + 4 + 4 + CertIDLen + 65 + 4 // 90
	CredentialLen  = credTBSLen + 64                // 154
	codeTBSLen     = 1 + 4 + 2 + 1 + CredentialLen  // 162
	CodeLen        = codeTBSLen + 64                // 226
	platformTBSLen = 1 + 4 + 4 + 65 + 4             // 78
	PlatformLen    = platformTBSLen + 64            // 142
	// MaxTextLen bounds the text form; anything longer is refused unread.
	MaxTextLen = 512
)

// SM2 user IDs, one per signature purpose, so that no signature of one
// kind can ever be replayed as another.
var (
	uidRoot       = []byte("YBECERT-ROOT-V1")
	uidCredential = []byte("YBECERT-CRED-V1")
	uidCode       = []byte("YBECERT-CODE-V1")
)

// Reason is why a code was refused; stable, for terminals and logs.
type Reason string

// Reasons.
const (
	BadPrefix        Reason = "code_bad_prefix"
	BadEncoding      Reason = "code_bad_encoding"
	Truncated        Reason = "code_truncated"
	TooLong          Reason = "code_too_long"
	BadVersion       Reason = "code_bad_version"
	UnknownPlatform  Reason = "code_unknown_platform"
	BadCredential    Reason = "code_bad_credential"
	CredentialExpire Reason = "code_credential_expired"
	BadSignature     Reason = "code_bad_signature"
	BadStep          Reason = "code_bad_step"
	Expired          Reason = "code_expired"
	FromFuture       Reason = "code_from_future"
)

// Error is a refused code.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Detail }

// Unwrap gives the platform error with its code, so yibao.ErrorCode works.
func (e *Error) Unwrap() error {
	c := yibao.CodeInvalid
	switch e.Reason {
	case UnknownPlatform, BadCredential, BadSignature:
		c = yibao.CodeBadSignature
	case CredentialExpire, Expired, FromFuture, BadStep:
		c = yibao.CodePrecondition
	}
	return &yibao.Error{Code: c, Field: "code", Message: e.Error()}
}

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of a code error, "" otherwise.
func ReasonOf(err error) Reason {
	if e, ok := err.(*Error); ok {
		return e.Reason
	}
	return ""
}

// CertID is an e-certificate's stable id.
type CertID [CertIDLen]byte

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// String is the 20-character display form (RFC 4648 base32).
func (c CertID) String() string { return b32.EncodeToString(c[:]) }

// ParseCertID parses the display form.
func ParseCertID(s string) (CertID, error) {
	var c CertID
	b, err := b32.DecodeString(strings.ToUpper(s))
	if err != nil || len(b) != CertIDLen {
		return c, yibao.FieldError("cert_id", "want 20 base32 characters")
	}
	copy(c[:], b)
	return c, nil
}

// PlatformCert is a region platform's key, certified by the national root.
type PlatformCert struct {
	Admdvs   uint32 // e.g. 370100
	KeyID    uint32
	Public   *gmcrypto.PublicKey
	NotAfter uint32 // unix day (days since 1970-01-01), inclusive
	Sig      []byte // root's r‖s over the first 78 bytes
}

func (c *PlatformCert) tbs() []byte {
	b := make([]byte, 0, PlatformLen)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, c.Admdvs)
	b = binary.BigEndian.AppendUint32(b, c.KeyID)
	b = append(b, c.Public.Bytes()...)
	return binary.BigEndian.AppendUint32(b, c.NotAfter)
}

// IssuePlatformCert certifies a platform key with the root key.
func IssuePlatformCert(root *gmcrypto.PrivateKey, admdvs, keyID uint32, pub *gmcrypto.PublicKey, notAfter time.Time) (*PlatformCert, error) {
	c := &PlatformCert{Admdvs: admdvs, KeyID: keyID, Public: pub, NotAfter: unixDay(notAfter)}
	sig, err := root.SignRaw(uidRoot, c.tbs())
	if err != nil {
		return nil, err
	}
	c.Sig = sig
	return c, nil
}

// Bytes is the 142-byte encoding.
func (c *PlatformCert) Bytes() []byte { return append(c.tbs(), c.Sig...) }

// ParsePlatformCert parses and checks a platform certificate against the
// national root key at time now.
func ParsePlatformCert(b []byte, root *gmcrypto.PublicKey, now time.Time) (*PlatformCert, error) {
	if len(b) != PlatformLen || b[0] != Version {
		return nil, refuse(BadEncoding, "a platform certificate is %d bytes of version %d", PlatformLen, Version)
	}
	pub, err := gmcrypto.ParsePublicKey(b[9:74])
	if err != nil {
		return nil, refuse(BadEncoding, "platform key: %v", err)
	}
	c := &PlatformCert{Admdvs: binary.BigEndian.Uint32(b[1:5]), KeyID: binary.BigEndian.Uint32(b[5:9]), Public: pub,
		NotAfter: binary.BigEndian.Uint32(b[74:78]), Sig: append([]byte(nil), b[78:]...)}
	if !root.VerifyRaw(uidRoot, b[:platformTBSLen], c.Sig) {
		return nil, refuse(BadSignature, "the platform certificate of %06d is not signed by the national root", c.Admdvs)
	}
	if unixDay(now) > c.NotAfter {
		return nil, refuse(CredentialExpire, "the platform certificate of %06d expired", c.Admdvs)
	}
	return c, nil
}

// Credential is a device's key certified by its region platform: who the
// device speaks for (the e-certificate id), until when, and for which
// platform.
type Credential struct {
	Admdvs   uint32
	KeyID    uint32 // the platform key that signed it
	CertID   CertID
	Device   *gmcrypto.PublicKey
	NotAfter uint32 // unix day, inclusive
	Sig      []byte
	raw      []byte
}

func (c *Credential) tbs() []byte {
	b := make([]byte, 0, CredentialLen)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, c.Admdvs)
	b = binary.BigEndian.AppendUint32(b, c.KeyID)
	b = append(b, c.CertID[:]...)
	b = append(b, c.Device.Bytes()...)
	return binary.BigEndian.AppendUint32(b, c.NotAfter)
}

// IssueCredential certifies a device key with a platform key.
func IssueCredential(platform *gmcrypto.PrivateKey, admdvs, keyID uint32, cert CertID, device *gmcrypto.PublicKey, notAfter time.Time) (*Credential, error) {
	c := &Credential{Admdvs: admdvs, KeyID: keyID, CertID: cert, Device: device, NotAfter: unixDay(notAfter)}
	sig, err := platform.SignRaw(uidCredential, c.tbs())
	if err != nil {
		return nil, err
	}
	c.Sig = sig
	c.raw = append(c.tbs(), sig...)
	return c, nil
}

// Bytes is the 154-byte encoding.
func (c *Credential) Bytes() []byte {
	if c.raw == nil {
		c.raw = append(c.tbs(), c.Sig...)
	}
	return c.raw
}

// ParseCredential decodes a credential without checking its signature.
func ParseCredential(b []byte) (*Credential, error) {
	if len(b) != CredentialLen {
		return nil, refuse(Truncated, "a credential is %d bytes, got %d", CredentialLen, len(b))
	}
	if b[0] != Version {
		return nil, refuse(BadVersion, "credential version %d, want %d", b[0], Version)
	}
	dev, err := gmcrypto.ParsePublicKey(b[21:86])
	if err != nil {
		return nil, refuse(BadCredential, "device key: %v", err)
	}
	c := &Credential{Admdvs: binary.BigEndian.Uint32(b[1:5]), KeyID: binary.BigEndian.Uint32(b[5:9]), Device: dev,
		NotAfter: binary.BigEndian.Uint32(b[86:90]), Sig: b[credTBSLen:CredentialLen], raw: b}
	copy(c.CertID[:], b[9:21])
	return c, nil
}

// Code is one parsed dynamic code.
type Code struct {
	Step        uint32 // unix seconds / StepSeconds
	Counter     uint16 // distinguishes codes of one device within a step
	StepSeconds uint8
	Credential  *Credential
	Sig         []byte
	raw         []byte
}

// ID identifies this exact code (for one-time use): the SM3 of its bytes.
func (c *Code) ID() [32]byte { return gmcrypto.SM3(c.raw) }

// Raw is the code's bytes.
func (c *Code) Raw() []byte { return c.raw }

// Device is a phone (or a browser) holding an e-certificate: its own key
// and the credential the platform gave it.
type Device struct {
	Key        *gmcrypto.PrivateKey
	Credential []byte // 154 bytes
}

// Generate makes the code for time now: step of stepSeconds, the given
// counter, signed with the device key. The text form is Prefix + Base45.
func (d *Device) Generate(now time.Time, stepSeconds int, counter uint16) (string, error) {
	if stepSeconds < 5 || stepSeconds > 60 {
		return "", fmt.Errorf("code: step of %d s, want 5–60", stepSeconds)
	}
	if len(d.Credential) != CredentialLen {
		return "", fmt.Errorf("code: credential of %d bytes, want %d", len(d.Credential), CredentialLen)
	}
	b := make([]byte, 0, CodeLen)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, uint32(now.Unix()/int64(stepSeconds)))
	b = binary.BigEndian.AppendUint16(b, counter)
	b = append(b, byte(stepSeconds))
	b = append(b, d.Credential...)
	sig, err := d.Key.SignRaw(uidCode, b)
	if err != nil {
		return "", err
	}
	return Prefix + EncodeBase45(append(b, sig...)), nil
}

// Parse decodes the text form without checking signatures or time.
func Parse(text string) (*Code, error) {
	if len(text) > MaxTextLen {
		return nil, refuse(TooLong, "%d characters, at most %d", len(text), MaxTextLen)
	}
	if !strings.HasPrefix(text, Prefix) {
		if strings.HasPrefix(text, "YB") && len(text) > 3 && text[3] == ':' {
			return nil, refuse(BadVersion, "code version %q, this platform reads %q", text[:4], Prefix)
		}
		return nil, refuse(BadPrefix, "not an e-certificate code (it starts %q)", clip(text))
	}
	b, err := DecodeBase45(text[len(Prefix):])
	if err != nil {
		return nil, refuse(BadEncoding, "the code is not valid Base45")
	}
	switch {
	case len(b) < CodeLen:
		return nil, refuse(Truncated, "%d bytes, want %d", len(b), CodeLen)
	case len(b) > CodeLen:
		return nil, refuse(TooLong, "%d bytes, want %d", len(b), CodeLen)
	case b[0] != Version:
		return nil, refuse(BadVersion, "code version %d, want %d", b[0], Version)
	}
	cred, err := ParseCredential(b[8:codeTBSLen])
	if err != nil {
		return nil, err
	}
	return &Code{Step: binary.BigEndian.Uint32(b[1:5]), Counter: binary.BigEndian.Uint16(b[5:7]), StepSeconds: b[7],
		Credential: cred, Sig: b[codeTBSLen:], raw: b}, nil
}

func clip(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

func unixDay(t time.Time) uint32 { return uint32(t.Unix() / 86400) }

// Verifier checks codes with nothing but the trusted platform keys: what a
// terminal does offline, and the first half of what the platform does
// online (it then adds revocation and one-time use). Safe for concurrent
// use. Verified credentials are cached, so a code costs one SM2 verify.
type Verifier struct {
	// Platform returns the trusted key of a region platform, if any.
	Platform    func(admdvs, keyID uint32) (*gmcrypto.PublicKey, bool)
	StepSeconds int // the steps codes must use (default 20)
	Skew        int // steps of tolerance either side (default 1)

	mu    sync.RWMutex
	creds map[string]*gmcrypto.PublicKey // credential bytes → its verified device key
}

// maxCached bounds the credential cache; it is dropped when full.
const maxCached = 200_000

// Verify parses and checks a code at time now: platform known, credential
// signed by it and in date, code signed by the device, step within the
// window. It returns the code; revocation and one-time use are the
// caller's.
func (v *Verifier) Verify(text string, now time.Time) (*Code, error) {
	c, err := Parse(text)
	if err != nil {
		return nil, err
	}
	step := v.StepSeconds
	if step == 0 {
		step = 20
	}
	skew := v.Skew
	if skew == 0 {
		skew = 1
	}
	if int(c.StepSeconds) != step {
		return nil, refuse(BadStep, "the code uses %d-second steps, this platform %d", c.StepSeconds, step)
	}
	cur := now.Unix() / int64(step)
	switch d := int64(c.Step) - cur; {
	case d < -int64(skew):
		return nil, refuse(Expired, "the code is %d s old; show a fresh one", (cur-int64(c.Step))*int64(step))
	case d > int64(skew):
		return nil, refuse(FromFuture, "the code is %d s ahead of the platform clock", d*int64(step))
	}
	dev, err := v.credential(c.Credential, now)
	if err != nil {
		return nil, err
	}
	if !dev.VerifyRaw(uidCode, c.raw[:codeTBSLen], c.Sig) {
		return nil, refuse(BadSignature, "the device signature does not match")
	}
	return c, nil
}

func (v *Verifier) credential(cr *Credential, now time.Time) (*gmcrypto.PublicKey, error) {
	if unixDay(now) > cr.NotAfter {
		return nil, refuse(CredentialExpire, "the device credential expired; re-activate the e-certificate")
	}
	key := string(cr.raw)
	v.mu.RLock()
	dev := v.creds[key]
	v.mu.RUnlock()
	if dev != nil {
		return dev, nil
	}
	pk, ok := v.Platform(cr.Admdvs, cr.KeyID)
	if !ok {
		return nil, refuse(UnknownPlatform, "no trusted key %d of platform %06d", cr.KeyID, cr.Admdvs)
	}
	if !pk.VerifyRaw(uidCredential, cr.raw[:credTBSLen], cr.Sig) {
		return nil, refuse(BadCredential, "the device credential is not signed by platform %06d", cr.Admdvs)
	}
	v.mu.Lock()
	if v.creds == nil || len(v.creds) >= maxCached {
		v.creds = map[string]*gmcrypto.PublicKey{}
	}
	v.creds[key] = cr.Device
	v.mu.Unlock()
	return cr.Device, nil
}

// Package gmcrypto is the platform's only door to Chinese national
// cryptography (GM/T): SM2 signatures with a user ID, SM3 hashes and
// HMACs, HKDF-SM3 key derivation, SM4-GCM sealing with key rotation, blind
// indexes for encrypted lookups, and PBKDF2-SM3 password hashes. It is the
// only package that imports github.com/emmansun/gmsm.
package gmcrypto

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"

	"crypto/hkdf"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"
)

// DefaultUID is the SM2 user ID used when none is given (GM/T 0009).
var DefaultUID = []byte("1234567812345678")

// PrivateKey is an SM2 private key: either held in this process, or kept
// in a key store (NewStoreKey) that signs on the key's behalf and never
// hands the private half out.
type PrivateKey struct {
	k     *sm2.PrivateKey
	store *storeKey
}

type storeKey struct {
	pub  *PublicKey
	sign func(uid, msg []byte) ([]byte, error)
}

// NewStoreKey returns a PrivateKey whose private half stays in a key store
// (a hardware module, or the platform's wrapped-key store): SignUID, Sign
// and SignRaw call sign, which must return an ASN.1 DER SM2 signature of
// msg under uid (ZA with SM3) by the private key of pub. Bytes panics and
// MarshalPrivateKeyPEM fails for such a key.
func NewStoreKey(pub *PublicKey, sign func(uid, msg []byte) ([]byte, error)) *PrivateKey {
	return &PrivateKey{store: &storeKey{pub: pub, sign: sign}}
}

// InStore reports whether the key's private half is kept in a key store.
func (k *PrivateKey) InStore() bool { return k.store != nil }

// PublicKey is an SM2 public key.
type PublicKey struct{ k *ecdsa.PublicKey }

// GenerateKey makes a new SM2 key; rand nil means crypto/rand.
func GenerateKey(random io.Reader) (*PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	k, err := sm2.GenerateKey(random)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{k: k}, nil
}

// DeterministicKey derives a valid SM2 key from seed. It exists for seeded
// demo data and tests ONLY: anyone who knows the seed knows the key.
func DeterministicKey(seed []byte) *PrivateKey {
	n := sm2.P256().Params().N
	nMinus2 := new(big.Int).Sub(n, big.NewInt(2))
	for ctr := byte(0); ; ctr++ {
		h := SM3(append(append([]byte("yibao/deterministic-sm2/"), seed...), ctr))
		d := new(big.Int).SetBytes(h[:])
		if d.Sign() == 0 || d.Cmp(nMinus2) > 0 {
			continue
		}
		k, err := sm2.NewPrivateKeyFromInt(d)
		if err == nil {
			return &PrivateKey{k: k}
		}
	}
}

// Public returns the key's public half.
func (k *PrivateKey) Public() *PublicKey {
	if k.store != nil {
		return k.store.pub
	}
	return &PublicKey{&k.k.PublicKey}
}

// Sign signs msg with SM2 (ZA with DefaultUID, SM3), ASN.1 DER encoded.
func (k *PrivateKey) Sign(msg []byte) ([]byte, error) { return k.SignUID(DefaultUID, msg) }

// SignUID signs msg with SM2 using the given user ID.
func (k *PrivateKey) SignUID(uid, msg []byte) ([]byte, error) {
	if k.store != nil {
		return k.store.sign(uid, msg)
	}
	return k.k.Sign(rand.Reader, msg, sm2.NewSM2SignerOption(true, uid))
}

// Verify checks an SM2 signature made with DefaultUID.
func (p *PublicKey) Verify(msg, sig []byte) bool { return p.VerifyUID(DefaultUID, msg, sig) }

// VerifyUID checks an SM2 signature made with the given user ID.
func (p *PublicKey) VerifyUID(uid, msg, sig []byte) bool {
	return sm2.VerifyASN1WithSM2(p.k, uid, msg, sig)
}

// Bytes returns the 65-byte uncompressed point 04‖X‖Y.
func (p *PublicKey) Bytes() []byte {
	b := make([]byte, 65)
	b[0] = 4
	p.k.X.FillBytes(b[1:33])
	p.k.Y.FillBytes(b[33:])
	return b
}

// Equal reports whether two public keys are the same point.
func (p *PublicKey) Equal(q *PublicKey) bool { return q != nil && p.k.Equal(q.k) }

// ParsePublicKey parses an uncompressed point, rejecting points not on the
// SM2 curve.
func ParsePublicKey(b []byte) (*PublicKey, error) {
	if len(b) != 65 || b[0] != 4 {
		return nil, errors.New("gmcrypto: SM2 public key must be a 65-byte uncompressed point")
	}
	k, err := sm2.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("gmcrypto: SM2 public key: %w", err)
	}
	return &PublicKey{k}, nil
}

// Bytes returns the 32-byte private scalar. It panics for a key kept in a
// key store (InStore), whose scalar is not in this process.
func (k *PrivateKey) Bytes() []byte {
	if k.store != nil {
		panic("gmcrypto: the private half of a key-store key never leaves the store")
	}
	b := make([]byte, 32)
	k.k.D.FillBytes(b)
	return b
}

// ParsePrivateKey parses a 32-byte private scalar.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != 32 {
		return nil, errors.New("gmcrypto: SM2 private key must be 32 bytes")
	}
	k, err := sm2.NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("gmcrypto: SM2 private key: %w", err)
	}
	return &PrivateKey{k: k}, nil
}

// MarshalPrivateKeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(k *PrivateKey) ([]byte, error) {
	if k.store != nil {
		return nil, errors.New("gmcrypto: the private half of a key-store key never leaves the store")
	}
	der, err := smx509.MarshalPKCS8PrivateKey(k.k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes a PKCS#8 PEM SM2 private key.
func ParsePrivateKeyPEM(b []byte) (*PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("gmcrypto: no PRIVATE KEY PEM block")
	}
	key, err := smx509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	k, ok := key.(*sm2.PrivateKey)
	if !ok {
		return nil, errors.New("gmcrypto: the PEM key is not an SM2 key")
	}
	return &PrivateKey{k: k}, nil
}

// MarshalPublicKeyPEM encodes p as a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKeyPEM(p *PublicKey) ([]byte, error) {
	der, err := smx509.MarshalPKIXPublicKey(p.k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM decodes a PKIX PEM SM2 public key.
func ParsePublicKeyPEM(b []byte) (*PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("gmcrypto: no PUBLIC KEY PEM block")
	}
	key, err := smx509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	k, ok := key.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(k) {
		return nil, errors.New("gmcrypto: the PEM key is not an SM2 key")
	}
	return &PublicKey{k}, nil
}

// SM3 returns the SM3 digest of data.
func SM3(data []byte) [32]byte { return sm3.Sum(data) }

// NewSM3 returns a streaming SM3 hash.
func NewSM3() hash.Hash { return sm3.New() }

// HMACSM3 returns HMAC-SM3(key, data), 32 bytes.
func HMACSM3(key, data []byte) []byte {
	m := hmac.New(sm3.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// HMACEqual compares two MACs in constant time.
func HMACEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// DeriveKey derives n bytes for a purpose named by label from a master
// secret with HKDF-SM3 (RFC 5869 construction, no salt).
func DeriveKey(master []byte, label string, n int) []byte {
	k, err := hkdf.Key(sm3.New, master, nil, label, n)
	if err != nil {
		panic("gmcrypto: DeriveKey: " + err.Error()) // only for n > 255×32
	}
	return k
}

// BlindIndex returns a deterministic lookup token for value in a domain:
// HMAC-SM3(key, domain ‖ 0x00 ‖ value). Equal values in different domains
// give unrelated tokens.
func BlindIndex(key []byte, domain string, value []byte) []byte {
	m := hmac.New(sm3.New, key)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write(value)
	return m.Sum(nil)
}

// SignRaw signs msg with SM2 under uid and returns the fixed 64-byte r‖s
// form (GM/T 0009), for compact formats such as the e-certificate code.
func (k *PrivateKey) SignRaw(uid, msg []byte) ([]byte, error) {
	der, err := k.SignUID(uid, msg)
	if err != nil {
		return nil, err
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, fmt.Errorf("gmcrypto: SM2 signature: %w", err)
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}

// VerifyRaw checks a 64-byte r‖s SM2 signature of msg under uid. The
// library caches ZA per public key, so reusing one PublicKey value for a
// device makes each verification a single SM2 verify.
func (p *PublicKey) VerifyRaw(uid, msg, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	digest, err := sm2.CalculateSM2Hash(p.k, msg, uid)
	if err != nil {
		return false
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return sm2.Verify(p.k, digest, r, s) //nolint:staticcheck // raw r‖s is the point of this function
}

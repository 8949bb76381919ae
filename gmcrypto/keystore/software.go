package keystore

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"yibao/gmcrypto"
)

// Software is the key store of a deployment without a hardware module:
// its KEK is an SM4 key derived (HKDF-SM3) from the 32-byte master key
// (config master_key, YIBAO_MASTER_KEY, or <data_dir>/master.key). Wrapped
// keys are SM4-GCM bound to their id and purpose. Signing keys are
// unwrapped inside the store when they sign and never returned.
type Software struct {
	kek  []byte
	id   string
	keys sync.Map // cacheKey → signing key, parsed once
}

// NewSoftware returns the software store of a master key.
func NewSoftware(master []byte) (*Software, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("keystore: the master key must be 32 bytes, not %d", len(master))
	}
	kek := gmcrypto.DeriveKey(master, "yibao/keystore/kek/sm4", 16)
	fp := gmcrypto.SM3(append([]byte("yibao/keystore/kek-id/"), kek...))
	return &Software{kek: kek, id: "software:" + hex.EncodeToString(fp[:4])}, nil
}

// ID is "software:" and a fingerprint of the KEK (not of the master key).
func (s *Software) ID() string { return s.id }

// Wrap seals key under the KEK.
func (s *Software) Wrap(key, aad []byte) ([]byte, error) { return gmcrypto.WrapKey(s.kek, key, aad) }

// Unwrap opens a wrapped key.
func (s *Software) Unwrap(wrapped, aad []byte) ([]byte, error) {
	return gmcrypto.UnwrapKey(s.kek, wrapped, aad)
}

// GenerateSigner makes a random key and returns it wrapped.
func (s *Software) GenerateSigner(alg Alg, id string) (ref, pub []byte, err error) {
	priv, err := newPrivate(alg)
	if err != nil {
		return nil, nil, err
	}
	defer clear(priv)
	return s.ImportSigner(alg, id, priv)
}

// ImportSigner wraps an existing private key.
func (s *Software) ImportSigner(alg Alg, id string, private []byte) (ref, pub []byte, err error) {
	k, err := parseSigner(alg, private)
	if err != nil {
		return nil, nil, err
	}
	ref, err = s.Wrap(private, signerAAD(alg, id))
	if err != nil {
		return nil, nil, err
	}
	return ref, k.public(), nil
}

// Sign unwraps the key (once; it stays in the store) and signs.
func (s *Software) Sign(alg Alg, id string, ref, uid, msg []byte) ([]byte, error) {
	return signWrapped(&s.keys, s.Unwrap, alg, id, ref, ref, uid, msg)
}

// signWrapped signs with a private key kept wrapped: unwrapped (by
// unwrap, from wrapped) and parsed on first use, then cached under the
// key's reference. Both stores sign their wrapped keys this way.
func signWrapped(cache *sync.Map, unwrap func(wrapped, aad []byte) ([]byte, error), alg Alg, id string, ref, wrapped, uid, msg []byte) ([]byte, error) {
	if k, ok := cache.Load(cacheKey(alg, id, ref)); ok {
		return k.(signer).sign(uid, msg)
	}
	priv, err := unwrap(wrapped, signerAAD(alg, id))
	if err != nil {
		return nil, fmt.Errorf("keystore: signing key %s: %w", id, err)
	}
	defer clear(priv)
	k, err := parseSigner(alg, priv)
	if err != nil {
		return nil, err
	}
	cache.Store(cacheKey(alg, id, ref), k)
	return k.sign(uid, msg)
}

// Destroy forgets a cached key; the wrapped copy is the catalog's to delete.
func (s *Software) Destroy(alg Alg, id string, ref []byte) error {
	s.keys.Delete(cacheKey(alg, id, ref))
	return nil
}

// Close does nothing.
func (s *Software) Close() error { return nil }

// cacheKey names a parsed signing key: the same reference under another id
// or algorithm must be unwrapped (and refused) again.
func cacheKey(alg Alg, id string, ref []byte) string {
	return string(alg) + "\x00" + id + "\x00" + string(ref)
}

// signer is a private key in process memory (inside a store).
type signer interface {
	sign(uid, msg []byte) ([]byte, error)
	public() []byte
}

type sm2Signer struct{ k *gmcrypto.PrivateKey }

func (k sm2Signer) sign(uid, msg []byte) ([]byte, error) {
	if uid == nil {
		uid = gmcrypto.DefaultUID
	}
	return k.k.SignUID(uid, msg)
}
func (k sm2Signer) public() []byte { return k.k.Public().Bytes() }

type edSigner struct{ k ed25519.PrivateKey }

func (k edSigner) sign(uid, msg []byte) ([]byte, error) { return ed25519.Sign(k.k, msg), nil }
func (k edSigner) public() []byte                       { return []byte(k.k.Public().(ed25519.PublicKey)) }

func parseSigner(alg Alg, private []byte) (signer, error) {
	switch alg {
	case AlgSM2:
		k, err := gmcrypto.ParsePrivateKey(private)
		if err != nil {
			return nil, err
		}
		return sm2Signer{k}, nil
	case AlgEd25519:
		if len(private) != ed25519.SeedSize {
			return nil, errors.New("keystore: an Ed25519 private key is a 32-byte seed")
		}
		return edSigner{ed25519.NewKeyFromSeed(private)}, nil
	}
	return nil, fmt.Errorf("keystore: %s is not a signing algorithm", alg)
}

func newPrivate(alg Alg) ([]byte, error) {
	switch alg {
	case AlgSM2:
		k, err := gmcrypto.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		return k.Bytes(), nil
	case AlgEd25519:
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		return seed, nil
	}
	return nil, fmt.Errorf("keystore: %s is not a signing algorithm", alg)
}

// VerifyPublic checks a signature with a public key as the catalog keeps
// it (SM2: 65-byte point, default uid if nil; Ed25519: 32 bytes).
func VerifyPublic(alg Alg, pub, uid, msg, sig []byte) bool {
	switch alg {
	case AlgSM2:
		p, err := gmcrypto.ParsePublicKey(pub)
		if err != nil {
			return false
		}
		if uid == nil {
			uid = gmcrypto.DefaultUID
		}
		return p.VerifyUID(uid, msg, sig)
	case AlgEd25519:
		return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, msg, sig)
	}
	return false
}

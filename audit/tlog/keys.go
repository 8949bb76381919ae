package tlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"yibao/gmcrypto"
)

// SM2SignatureType is yibao's signature type identifier for SM2 note
// signatures. C2SP signed-note reserves the byte 0xff for "signature types
// without an identifier byte assigned by this specification" and recommends
// that a longer identifier follow it; ours is the ASCII string "yibao/sm2".
// It stands where note's algorithm byte stands (0x01 for Ed25519): in the
// key ID and at the front of the public key in a verifier key.
const SM2SignatureType = "\xffyibao/sm2"

// keyID follows note's (and C2SP signed-note's) convention: the first four
// bytes, big-endian, of SHA-256(name || "\n" || type || public key).
func keyID(name string, typeAndKey []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(typeAndKey)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// validName is note's rule for key names: non-empty UTF-8 without spaces
// or '+'.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

type sm2Signer struct {
	name string
	hash uint32
	key  *gmcrypto.PrivateKey
}

func (s *sm2Signer) Name() string    { return s.name }
func (s *sm2Signer) KeyHash() uint32 { return s.hash }

// Sign signs the note text with SM2 (SM3 digest, GM/T 0009 default user
// ID), ASN.1 DER encoded.
func (s *sm2Signer) Sign(msg []byte) ([]byte, error) { return s.key.Sign(msg) }

type sm2Verifier struct {
	name string
	hash uint32
	key  *gmcrypto.PublicKey
}

func (v *sm2Verifier) Name() string                { return v.name }
func (v *sm2Verifier) KeyHash() uint32             { return v.hash }
func (v *sm2Verifier) Verify(msg, sig []byte) bool { return v.key.Verify(msg, sig) }

// NewSM2Signer returns a note signer that signs with the SM2 key k under the
// given key name (for checkpoints: the log's origin).
func NewSM2Signer(name string, k *gmcrypto.PrivateKey) (note.Signer, error) {
	if !validName(name) {
		return nil, fmt.Errorf("tlog: invalid key name %q", name)
	}
	if k == nil {
		return nil, errors.New("tlog: nil SM2 key")
	}
	pub := append([]byte(SM2SignatureType), k.Public().Bytes()...)
	return &sm2Signer{name: name, hash: keyID(name, pub), key: k}, nil
}

// SM2VerifierKey returns the verifier key ("vkey") for an SM2 public key,
// in note's format: name+hash+base64(type || 65-byte uncompressed point),
// hash being the eight hex digits of the key ID.
func SM2VerifierKey(name string, pub *gmcrypto.PublicKey) string {
	k := append([]byte(SM2SignatureType), pub.Bytes()...)
	return fmt.Sprintf("%s+%08x+%s", name, keyID(name, k), base64.StdEncoding.EncodeToString(k))
}

// NewSM2Verifier parses a verifier key made by SM2VerifierKey.
func NewSM2Verifier(vkey string) (note.Verifier, error) {
	name, rest, _ := strings.Cut(vkey, "+")
	hash16, key64, _ := strings.Cut(rest, "+")
	hash, err1 := strconv.ParseUint(hash16, 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(key64)
	if len(hash16) != 8 || err1 != nil || err2 != nil || !validName(name) {
		return nil, errors.New("tlog: malformed SM2 verifier key")
	}
	if !strings.HasPrefix(string(key), SM2SignatureType) {
		return nil, errors.New("tlog: not an SM2 verifier key")
	}
	if uint32(hash) != keyID(name, key) {
		return nil, errors.New("tlog: SM2 verifier key: hash does not match the key")
	}
	pub, err := gmcrypto.ParsePublicKey(key[len(SM2SignatureType):])
	if err != nil {
		return nil, fmt.Errorf("tlog: SM2 verifier key: %w", err)
	}
	return &sm2Verifier{name: name, hash: uint32(hash), key: pub}, nil
}

// NewVerifier parses a verifier key of either kind this package uses:
// Ed25519 (note's own format) or SM2 (SM2VerifierKey).
func NewVerifier(vkey string) (note.Verifier, error) {
	if v, err := NewSM2Verifier(vkey); err == nil {
		return v, nil
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("tlog: verifier key is neither SM2 nor Ed25519: %w", err)
	}
	return v, nil
}

// GenerateEd25519 makes a new Ed25519 note key pair for name (note.GenerateKey
// with crypto/rand): skey is the secret signer key "PRIVATE+KEY+name+hash+…",
// vkey the verifier key "name+hash+…" to give to verifiers and witnesses.
func GenerateEd25519(name string) (skey, vkey string, err error) {
	if !validName(name) {
		return "", "", fmt.Errorf("tlog: invalid key name %q", name)
	}
	return note.GenerateKey(rand.Reader, name)
}

// Ed25519FromSeed derives the Ed25519 note key pair for name from a 32-byte
// seed (e.g. one kept in the platform's key store, or derived for demo
// data). Anyone who knows the seed can sign checkpoints.
func Ed25519FromSeed(name string, seed []byte) (skey, vkey string, err error) {
	if !validName(name) {
		return "", "", fmt.Errorf("tlog: invalid key name %q", name)
	}
	if len(seed) != ed25519.SeedSize {
		return "", "", fmt.Errorf("tlog: Ed25519 seed must be %d bytes", ed25519.SeedSize)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	vkey, err = note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", "", err
	}
	// vkey is name+hash+key; the signer key shares the hash.
	hash := strings.Split(vkey, "+")[1]
	skey = fmt.Sprintf("PRIVATE+KEY+%s+%s+%s", name, hash, base64.StdEncoding.EncodeToString(append([]byte{1}, seed...)))
	return skey, vkey, nil
}

// NewEd25519Signer parses a secret signer key made by GenerateEd25519 or
// Ed25519FromSeed (note.NewSigner).
func NewEd25519Signer(skey string) (note.Signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("tlog: Ed25519 signer key: %w", err)
	}
	return s, nil
}

// RequireAll returns verifiers that accept a note only if EVERY one of vs
// signed it (note.Open alone accepts a note that at least one known key
// signed). Use it to insist on both the Ed25519 and the SM2 signature:
//
//	tlog.VerifyReceipt(r, tlog.RequireAll(ed, sm2))
func RequireAll(vs ...note.Verifier) note.Verifiers {
	return &allOf{Verifiers: note.VerifierList(vs...), list: vs}
}

type allOf struct {
	note.Verifiers
	list []note.Verifier
}

// requirement is implemented by verifier sets that demand more than one
// valid signature.
type requirement interface {
	required() []note.Verifier
}

func (a *allOf) required() []note.Verifier { return a.list }

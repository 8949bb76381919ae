// Package keystore is the platform's key hierarchy. A key-encryption key
// (KEK) — the master key in software, or a key inside a PKCS#11 hardware
// module — wraps every other key: the SM4 data keys that seal personal
// data and face templates, the derivation root that index and MAC keys
// come from, and the SM2 and Ed25519 signing keys of checkpoints and bank
// requests. The wrapped keys live in the database table crypto_keys (the
// catalog), each with an id, a purpose and a state:
//
//	active        seals / signs (one per purpose)
//	decrypt-only  opens old values / its public key verifies old signatures; never seals or signs
//	retired       nothing: its wrapped material is destroyed (a signing key's public half stays)
//
// Rotation makes a new active key and turns the old one decrypt-only;
// Reencrypt re-seals the stored values under the active data key,
// resumably; Retire destroys a key nothing refers to any more.
//
// The package holds no SQL schema knowledge beyond its own tables: the
// columns to re-seal are given as Targets by the wiring layer (app), and the
// database is reached through the small DB interface that sqlstore's DB
// and Tx satisfy.
package keystore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Kind is what a key is for.
type Kind string

// Key kinds.
const (
	KindData    Kind = "data"    // SM4 data-encryption key
	KindSecret  Kind = "secret"  // a secret that other keys are derived from (HKDF-SM3)
	KindSigning Kind = "signing" // a private signing key (its public half is kept in clear)
)

// Alg is a key's algorithm.
type Alg string

// Algorithms.
const (
	AlgSM4     Alg = "SM4"      // 16 bytes
	AlgHKDF    Alg = "HKDF-SM3" // a 32-byte derivation secret
	AlgSM2     Alg = "SM2"      // 32-byte scalar; public: 65-byte uncompressed point
	AlgEd25519 Alg = "Ed25519"  // 32-byte seed; public: 32 bytes
)

// State is where a key is in its life.
type State string

// States.
const (
	StateActive      State = "active"
	StateDecryptOnly State = "decrypt-only" // for a signing key: verify-only
	StateRetired     State = "retired"
)

// Purposes: each has at most one active key.
const (
	PurposePII               = "pii"                // SM4: persons' ID number, name, phone; face templates; HMAC secrets of institution keys and webhooks
	PurposeRoot              = "derivation-root"    // blind-index, person-reference, face-scope, OTP and session keys; the e-certificate keys
	PurposeCheckpointSM2     = "checkpoint-sm2"     // signs the transparency log's checkpoints (receipts)
	PurposeCheckpointEd25519 = "checkpoint-ed25519" // signs them too (note's own algorithm)
	PurposeBankRequest       = "bank-request"       // signs the platform's requests to partner banks
	PurposeNode              = "node-request"       // signs this node's messages to the cross-region hub
)

// Spec describes a purpose.
type Spec struct {
	Purpose   string
	Kind      Kind
	Alg       Alg
	Prefix    string // key ids are Prefix + generation: k1, k2, cp-sm2-1, …
	Rotatable bool
}

// Specs lists the purposes the platform needs, in bootstrap order.
var Specs = []Spec{
	{PurposePII, KindData, AlgSM4, "k", true},
	{PurposeRoot, KindSecret, AlgHKDF, "root", false},
	{PurposeCheckpointSM2, KindSigning, AlgSM2, "cp-sm2-", true},
	{PurposeCheckpointEd25519, KindSigning, AlgEd25519, "cp-ed-", true},
	{PurposeBankRequest, KindSigning, AlgSM2, "bank-sm2-", true},
	{PurposeNode, KindSigning, AlgSM2, "node-sm2-", true},
}

// SpecOf returns the spec of a purpose.
func SpecOf(purpose string) (Spec, bool) {
	for _, s := range Specs {
		if s.Purpose == purpose {
			return s, true
		}
	}
	return Spec{}, false
}

// KeyStore holds the key-encryption key and does the work that needs it.
// Private keys given to it or made by it are used only through Sign: the
// caller keeps an opaque reference (ref) — the key wrapped under the KEK,
// or the name of an object inside a hardware module — in the catalog.
type KeyStore interface {
	// ID names the KEK, e.g. "software:1a2b3c4d" or "pkcs11:token/label".
	// The catalog records it with every key, so keys wrapped under another
	// KEK are refused with a clear message.
	ID() string
	// Wrap encrypts key material under the KEK, bound to aad.
	Wrap(key, aad []byte) ([]byte, error)
	// Unwrap reverses Wrap.
	Unwrap(wrapped, aad []byte) ([]byte, error)
	// GenerateSigner makes a new private key for alg inside the store.
	GenerateSigner(alg Alg, id string) (ref, pub []byte, err error)
	// ImportSigner takes an existing private key (SM2 scalar or Ed25519
	// seed) into the store.
	ImportSigner(alg Alg, id string, private []byte) (ref, pub []byte, err error)
	// Sign signs msg with the key ref refers to: SM2 (ZA under uid, nil
	// meaning the GM/T 0009 default, SM3; ASN.1 DER) or Ed25519 (uid
	// ignored).
	Sign(alg Alg, id string, ref, uid, msg []byte) ([]byte, error)
	// Destroy removes a retired key's material where the store holds it
	// (a hardware object); wrapped keys are destroyed by deleting ref.
	Destroy(alg Alg, id string, ref []byte) error
	Close() error
}

// DB is what the catalog needs of the database: statements with '?'
// placeholders (sqlstore.DB and sqlstore.Tx satisfy it).
type DB interface {
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
}

// Errors.
var (
	ErrNoKey        = errors.New("keystore: no such key")
	ErrRetired      = errors.New("keystore: the key is retired")
	ErrNotRotatable = errors.New("keystore: keys of this purpose cannot be rotated")
	ErrInUse        = errors.New("keystore: the key is still in use")
	ErrOtherStore   = errors.New("keystore: the key is wrapped under another key-encryption key")
)

// wrapAAD binds wrapped material to its key's id, purpose and algorithm.
func wrapAAD(id, purpose string, alg Alg) []byte {
	return fmt.Appendf(nil, "yibao/keystore/v1/%s/%s/%s", id, purpose, alg)
}

// signerAAD binds a wrapped private key to its id and algorithm (the
// stores' own wrapping of signing keys).
func signerAAD(alg Alg, id string) []byte {
	return fmt.Appendf(nil, "yibao/keystore/v1/signer/%s/%s", id, alg)
}

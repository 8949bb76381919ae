package gmcrypto

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/emmansun/gmsm/sm4"
)

// Keyring seals data with SM4-GCM under its active key and opens data
// sealed under any of its keys, so keys can be rotated without rewriting
// old rows. Sealed values are self-describing:
//
//	0x01 | len(key id) | key id | 12-byte nonce | ciphertext ‖ 16-byte tag
//
// A keyring is safe for concurrent use and can be changed while in use
// (Update, and a loader for key ids it does not hold yet), so a running
// server follows a key rotation without a restart.
type Keyring struct {
	mu     sync.Mutex // serialises changes; readers use state
	state  atomic.Pointer[ringState]
	loader atomic.Pointer[func(id string) ([]byte, error)]
}

type ringState struct {
	active string
	aeads  map[string]cipher.AEAD
}

const sealVersion = 1

var keyIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,16}$`)

// ErrOpen is returned for any sealed value that does not open: tampered,
// truncated, wrong key or wrong associated data. The causes are not told
// apart on purpose.
var ErrOpen = errors.New("gmcrypto: sealed value does not open")

// ValidKeyID reports whether id can name a keyring key (1–16 of
// [A-Za-z0-9_-]).
func ValidKeyID(id string) bool { return keyIDRe.MatchString(id) }

func newAEAD(id string, k []byte) (cipher.AEAD, error) {
	if !keyIDRe.MatchString(id) {
		return nil, fmt.Errorf("gmcrypto: key id %q must be 1–16 of [A-Za-z0-9_-]", id)
	}
	if len(k) != 16 {
		return nil, fmt.Errorf("gmcrypto: key %s must be 16 bytes, not %d", id, len(k))
	}
	b, err := sm4.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func buildState(active string, keys map[string][]byte) (*ringState, error) {
	st := &ringState{active: active, aeads: map[string]cipher.AEAD{}}
	for id, k := range keys {
		aead, err := newAEAD(id, k)
		if err != nil {
			return nil, err
		}
		st.aeads[id] = aead
	}
	if _, ok := st.aeads[active]; !ok {
		return nil, fmt.Errorf("gmcrypto: active key %q is not in the keyring", active)
	}
	return st, nil
}

// NewKeyring builds a keyring from 16-byte SM4 keys by id.
func NewKeyring(active string, keys map[string][]byte) (*Keyring, error) {
	st, err := buildState(active, keys)
	if err != nil {
		return nil, err
	}
	kr := &Keyring{}
	kr.state.Store(st)
	return kr, nil
}

// Update replaces the keyring's keys and active key at once (after a
// rotation). Values in flight keep the state they started with.
func (kr *Keyring) Update(active string, keys map[string][]byte) error {
	st, err := buildState(active, keys)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	kr.state.Store(st)
	kr.mu.Unlock()
	return nil
}

// SetLoader sets the function Open calls for a key id the ring does not
// hold (a key created by another process after this ring was built); a key
// it returns joins the ring for decryption only. nil removes the loader.
func (kr *Keyring) SetLoader(load func(id string) ([]byte, error)) {
	if load == nil {
		kr.loader.Store(nil)
		return
	}
	kr.loader.Store(&load)
}

// add puts a decryption key into the ring (copy on write).
func (kr *Keyring) add(id string, key []byte) (cipher.AEAD, error) {
	aead, err := newAEAD(id, key)
	if err != nil {
		return nil, err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	old := kr.state.Load()
	if a, ok := old.aeads[id]; ok {
		return a, nil
	}
	st := &ringState{active: old.active, aeads: make(map[string]cipher.AEAD, len(old.aeads)+1)}
	for k, v := range old.aeads {
		st.aeads[k] = v
	}
	st.aeads[id] = aead
	kr.state.Store(st)
	return aead, nil
}

// ActiveKeyID names the key new values are sealed with.
func (kr *Keyring) ActiveKeyID() string { return kr.state.Load().active }

// KeyIDs lists the ids of the keys the ring holds, sorted.
func (kr *Keyring) KeyIDs() []string {
	st := kr.state.Load()
	ids := make([]string, 0, len(st.aeads))
	for id := range st.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Seal encrypts and authenticates plaintext, binding aad (which is not
// stored and must be given again to open).
func (kr *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	st := kr.state.Load()
	return seal(st.active, st.aeads[st.active], plaintext, aad)
}

func seal(id string, aead cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	head := 2 + len(id)
	out := make([]byte, head+aead.NonceSize(), head+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	out[1] = byte(len(id))
	copy(out[2:], id)
	nonce := out[head:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plaintext, aad), nil
}

// SealedKeyID returns the id of the key a value made by Seal names, without
// opening it; ok is false for a value that is not a sealed value.
func SealedKeyID(sealed []byte) (id string, ok bool) {
	if len(sealed) < 2 || sealed[0] != sealVersion || len(sealed) < 2+int(sealed[1]) {
		return "", false
	}
	return string(sealed[2 : 2+int(sealed[1])]), true
}

// Open decrypts a value made by Seal under any key of the ring (asking the
// loader for a key id the ring does not hold yet).
func (kr *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	id, ok := SealedKeyID(sealed)
	if !ok {
		return nil, ErrOpen
	}
	aead, ok := kr.state.Load().aeads[id]
	if !ok {
		load := kr.loader.Load()
		if load == nil {
			return nil, fmt.Errorf("%w: unknown key id %q", ErrOpen, id)
		}
		key, err := (*load)(id)
		if err != nil {
			return nil, fmt.Errorf("%w: key id %q: %v", ErrOpen, id, err)
		}
		if aead, err = kr.add(id, key); err != nil {
			return nil, fmt.Errorf("%w: key id %q: %v", ErrOpen, id, err)
		}
	}
	rest := sealed[2+len(id):]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Reseal opens a sealed value and seals it again under the active key,
// binding the same aad. A value already under the active key is returned
// as it is, with changed false.
func (kr *Keyring) Reseal(sealed, aad []byte) (out []byte, changed bool, err error) {
	if id, ok := SealedKeyID(sealed); ok && id == kr.ActiveKeyID() {
		return sealed, false, nil
	}
	pt, err := kr.Open(sealed, aad)
	if err != nil {
		return nil, false, err
	}
	out, err = kr.Seal(pt, aad)
	clear(pt)
	return out, err == nil, err
}

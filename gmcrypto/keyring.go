package gmcrypto

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"

	"github.com/emmansun/gmsm/sm4"
)

// Keyring seals data with SM4-GCM under its active key and opens data
// sealed under any of its keys, so keys can be rotated without rewriting
// old rows. Sealed values are self-describing:
//
//	0x01 | len(key id) | key id | 12-byte nonce | ciphertext ‖ 16-byte tag
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD
}

const sealVersion = 1

var keyIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,16}$`)

// ErrOpen is returned for any sealed value that does not open: tampered,
// truncated, wrong key or wrong associated data. The causes are not told
// apart on purpose.
var ErrOpen = errors.New("gmcrypto: sealed value does not open")

// NewKeyring builds a keyring from 16-byte SM4 keys by id.
func NewKeyring(active string, keys map[string][]byte) (*Keyring, error) {
	kr := &Keyring{active: active, aeads: map[string]cipher.AEAD{}}
	for id, k := range keys {
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
		aead, err := cipher.NewGCM(b)
		if err != nil {
			return nil, err
		}
		kr.aeads[id] = aead
	}
	if _, ok := kr.aeads[active]; !ok {
		return nil, fmt.Errorf("gmcrypto: active key %q is not in the keyring", active)
	}
	return kr, nil
}

// ActiveKeyID names the key new values are sealed with.
func (kr *Keyring) ActiveKeyID() string { return kr.active }

// Seal encrypts and authenticates plaintext, binding aad (which is not
// stored and must be given again to open).
func (kr *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	aead := kr.aeads[kr.active]
	head := 2 + len(kr.active)
	out := make([]byte, head+aead.NonceSize(), head+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	out[1] = byte(len(kr.active))
	copy(out[2:], kr.active)
	nonce := out[head:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a value made by Seal under any key of the ring.
func (kr *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != sealVersion {
		return nil, ErrOpen
	}
	n := int(sealed[1])
	if len(sealed) < 2+n {
		return nil, ErrOpen
	}
	aead, ok := kr.aeads[string(sealed[2:2+n])]
	if !ok {
		return nil, fmt.Errorf("%w: unknown key id %q", ErrOpen, sealed[2:2+n])
	}
	rest := sealed[2+n:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

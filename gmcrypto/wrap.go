package gmcrypto

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/emmansun/gmsm/sm4"
)

// ErrUnwrap is returned for a wrapped key that does not open: another
// key-encryption key, another key id or purpose (aad), or tampering.
var ErrUnwrap = errors.New("gmcrypto: wrapped key does not open")

const wrapVersion = 1

// WrapKey encrypts key material under a 16-byte SM4 key-encryption key
// with SM4-GCM, binding aad (e.g. the key's id and purpose, so a wrapped
// key cannot be passed off as another):
//
//	0x01 | 12-byte nonce | ciphertext ‖ 16-byte tag
func WrapKey(kek, key, aad []byte) ([]byte, error) {
	aead, err := wrapAEAD(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(key)+aead.Overhead())
	out[0] = wrapVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:], key, aad), nil
}

// UnwrapKey reverses WrapKey.
func UnwrapKey(kek, wrapped, aad []byte) ([]byte, error) {
	aead, err := wrapAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 1+aead.NonceSize()+aead.Overhead() || wrapped[0] != wrapVersion {
		return nil, ErrUnwrap
	}
	key, err := aead.Open(nil, wrapped[1:1+aead.NonceSize()], wrapped[1+aead.NonceSize():], aad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return key, nil
}

func wrapAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != 16 {
		return nil, fmt.Errorf("gmcrypto: key-encryption key must be 16 bytes, not %d", len(kek))
	}
	b, err := sm4.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

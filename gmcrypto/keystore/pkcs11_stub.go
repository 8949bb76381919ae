//go:build !pkcs11

package keystore

import "errors"

// OpenPKCS11 is not available in this build: build with -tags pkcs11.
func OpenPKCS11(cfg PKCS11Config) (KeyStore, error) {
	return nil, errors.New("keystore: this binary was built without PKCS#11 support: build it with `go build -tags pkcs11` (needs cgo)")
}

package keystore

// PKCS11Config opens a key store in a PKCS#11 module (a certified
// cryptographic module in production; SoftHSM in tests). OpenPKCS11 exists
// in every build but works only in binaries built with -tags pkcs11 (cgo
// and github.com/miekg/pkcs11); without the tag it says so.
type PKCS11Config struct {
	Module   string // path of the module, e.g. /usr/lib/softhsm/libsofthsm2.so
	Token    string // label of the token
	PIN      string // the user PIN
	KEKLabel string // label of the key-encryption key in the token (default yibao-kek)
	// CreateKEK generates the KEK in the token when none has the label
	// (first setup and tests; in production the module's administrators
	// make it in a key ceremony).
	CreateKEK bool
}

func (c PKCS11Config) kekLabel() string {
	if c.KEKLabel == "" {
		return "yibao-kek"
	}
	return c.KEKLabel
}

package keystore

import "yibao/gmcrypto"

// Legacy is a key as the platform derived it from the master key before
// the catalog existed. A database from then is opened by importing these
// (wrapped, under their old ids) when its catalog is first filled, so
// every old value still opens and every old receipt still verifies.
type Legacy struct {
	ID       string
	Material []byte // SM4 key, derivation secret, SM2 scalar or Ed25519 seed
	Label    string // how it was derived
}

// LegacyKeys returns the pre-catalog keys of a master key by purpose:
// "k1" = HKDF-SM3(master, "yibao/pii/sm4/k1"), the checkpoint and bank keys
// from their labels, and the derivation root, which was the master key
// itself.
func LegacyKeys(master []byte) map[string]Legacy {
	det := func(label string) []byte {
		return gmcrypto.DeterministicKey(gmcrypto.DeriveKey(master, label, 32)).Bytes()
	}
	return map[string]Legacy{
		PurposePII:               {"k1", gmcrypto.DeriveKey(master, "yibao/pii/sm4/k1", 16), "HKDF-SM3(master, yibao/pii/sm4/k1)"},
		PurposeRoot:              {"root1", append([]byte(nil), master...), "the master key"},
		PurposeCheckpointSM2:     {"cp-sm2-1", det("yibao/audit/checkpoint-sm2"), "SM2 from HKDF-SM3(master, yibao/audit/checkpoint-sm2)"},
		PurposeCheckpointEd25519: {"cp-ed-1", gmcrypto.DeriveKey(master, "yibao/audit/checkpoint-ed25519", 32), "Ed25519 seed HKDF-SM3(master, yibao/audit/checkpoint-ed25519)"},
		PurposeBankRequest:       {"bank-sm2-1", det("yibao/credit/platform-sm2"), "SM2 from HKDF-SM3(master, yibao/credit/platform-sm2)"},
	}
}

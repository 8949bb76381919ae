//go:build pkcs11

package keystore

import (
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"yibao/gmcrypto"
)

// PKCS#11 v3.0 EdDSA values (miekg/pkcs11 v1.1.2 predates them).
const (
	ckkECEdwards           = 0x40
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057
)

// DER of the Ed25519 OID 1.3.101.112 (CKA_EC_PARAMS), and of the printable
// string "edwards25519" that PKCS#11 v3.0 also names.
var (
	ed25519OID    = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
	ed25519Curve  = append([]byte{0x13, 0x0c}, "edwards25519"...)
	errNotPKCS11  = errors.New("keystore: not a reference of the PKCS#11 store")
	pkcs11Mu      sync.Mutex // C_Initialize/C_Finalize are per process
	pkcs11Openers = map[string]int{}
)

// PKCS11 is a key store in a PKCS#11 module. Its KEK is a secret key
// object in the token that never leaves it (CKA_SENSITIVE, not
// extractable).
//
// What stands in for what: a GB/T 39786 deployment uses a GM/T 0028
// certified module with SM4 and SM2 mechanisms (vendor-defined in PKCS#11,
// or its SDF interface, GM/T 0018). SoftHSM, used here for the tests, has
// neither, so:
//
//   - Wrap/Unwrap: the data keys (SM4) and secrets are wrapped by the token
//     with CKM_AES_KEY_WRAP (RFC 3394) under a 256-bit AES KEK — in place of
//     the module's SM4 key wrap. The key's id and purpose are bound by an
//     SM3 tag appended to the material before wrapping (AES-KW has no
//     associated data; its integrity check covers the tag). The data keys
//     are then used in process: SM4-GCM over every field is the
//     platform's, not the module's, work.
//   - Ed25519 signing keys are generated inside the token
//     (CKM_EC_EDWARDS_KEY_PAIR_GEN, not extractable) and sign there
//     (CKM_EDDSA): their reference is the object's label.
//   - SM2 signing keys (and any key imported from before the catalog) are
//     wrapped by the token like data keys and unwrapped into this process
//     to sign. With a GM module, GenerateSigner and Sign for SM2 are where
//     its SM2 key-pair generation and SM2 signing mechanisms plug in, so
//     SM2 keys stay inside too.
type PKCS11 struct {
	mu     sync.Mutex // one session, one operation at a time
	ctx    *pkcs11.Ctx
	module string
	sess   pkcs11.SessionHandle
	kek    pkcs11.ObjectHandle
	id     string
	keys   sync.Map // "w" references → parsed in-process signer
}

// OpenPKCS11 opens the token, logs in and finds (or, with CreateKEK,
// makes) the KEK.
func OpenPKCS11(cfg PKCS11Config) (KeyStore, error) {
	if cfg.Module == "" || cfg.Token == "" {
		return nil, errors.New("keystore: PKCS#11 needs a module path and a token label")
	}
	p := pkcs11.New(cfg.Module)
	if p == nil {
		return nil, fmt.Errorf("keystore: cannot load the PKCS#11 module %s", cfg.Module)
	}
	pkcs11Mu.Lock()
	if pkcs11Openers[cfg.Module] == 0 {
		if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			pkcs11Mu.Unlock()
			p.Destroy()
			return nil, fmt.Errorf("keystore: C_Initialize: %w", err)
		}
	}
	pkcs11Openers[cfg.Module]++
	pkcs11Mu.Unlock()
	s := &PKCS11{ctx: p, module: cfg.Module, id: "pkcs11:" + cfg.Token + "/" + cfg.kekLabel()}
	fail := func(err error) (KeyStore, error) {
		s.Close()
		return nil, err
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return fail(fmt.Errorf("keystore: C_GetSlotList: %w", err))
	}
	slot, found := uint(0), false
	for _, sl := range slots {
		ti, err := p.GetTokenInfo(sl)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == cfg.Token {
			slot, found = sl, true
			break
		}
	}
	if !found {
		return fail(fmt.Errorf("keystore: no PKCS#11 token labelled %q in %s", cfg.Token, cfg.Module))
	}
	if s.sess, err = p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
		return fail(fmt.Errorf("keystore: C_OpenSession: %w", err))
	}
	if err := p.Login(s.sess, pkcs11.CKU_USER, cfg.PIN); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		return fail(fmt.Errorf("keystore: C_Login: %w", err))
	}
	kek, err := s.find(pkcs11.CKO_SECRET_KEY, cfg.kekLabel())
	if err != nil {
		return fail(err)
	}
	if len(kek) == 0 {
		if !cfg.CreateKEK {
			return fail(fmt.Errorf("keystore: token %q has no key-encryption key labelled %q (make one: an AES-256 secret key, CKA_WRAP and CKA_UNWRAP, not extractable)", cfg.Token, cfg.kekLabel()))
		}
		h, err := p.GenerateKey(s.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, cfg.kekLabel()),
		})
		if err != nil {
			return fail(fmt.Errorf("keystore: generating the KEK: %w", err))
		}
		kek = []pkcs11.ObjectHandle{h}
	}
	if len(kek) > 1 {
		return fail(fmt.Errorf("keystore: token %q has %d keys labelled %q", cfg.Token, len(kek), cfg.kekLabel()))
	}
	s.kek = kek[0]
	return s, nil
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// find returns the objects of a class with a label.
func (s *PKCS11) find(class uint, label string) ([]pkcs11.ObjectHandle, error) {
	if err := s.ctx.FindObjectsInit(s.sess, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
		return nil, fmt.Errorf("keystore: C_FindObjectsInit: %w", err)
	}
	hs, _, err := s.ctx.FindObjects(s.sess, 16)
	if ferr := s.ctx.FindObjectsFinal(s.sess); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: C_FindObjects: %w", err)
	}
	return hs, nil
}

// ID is "pkcs11:<token>/<KEK label>".
func (s *PKCS11) ID() string { return s.id }

// aadTag binds wrapped material to its aad.
func aadTag(aad []byte) []byte {
	h := gmcrypto.SM3(append([]byte("yibao/keystore/pkcs11/aad/"), aad...))
	return h[:16]
}

// Wrap has the token wrap key‖tag(aad) under the KEK (CKM_AES_KEY_WRAP).
func (s *PKCS11) Wrap(key, aad []byte) ([]byte, error) {
	plain := append(append([]byte(nil), key...), aadTag(aad)...)
	defer clear(plain)
	if len(plain)%8 != 0 {
		return nil, fmt.Errorf("keystore: PKCS#11 wraps whole 8-byte blocks; %d-byte keys do not fit", len(key))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	obj, err := s.ctx.CreateObject(s.sess, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, plain),
	})
	if err != nil {
		return nil, fmt.Errorf("keystore: C_CreateObject: %w", err)
	}
	defer s.ctx.DestroyObject(s.sess, obj)
	w, err := s.ctx.WrapKey(s.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP, nil)}, s.kek, obj)
	if err != nil {
		return nil, fmt.Errorf("keystore: C_WrapKey: %w", err)
	}
	return w, nil
}

// Unwrap has the token unwrap, then checks the aad tag.
func (s *PKCS11) Unwrap(wrapped, aad []byte) ([]byte, error) {
	s.mu.Lock()
	obj, err := s.ctx.UnwrapKey(s.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP, nil)}, s.kek, wrapped, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	})
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: C_UnwrapKey: %v", gmcrypto.ErrUnwrap, err)
	}
	attrs, err := s.ctx.GetAttributeValue(s.sess, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	s.ctx.DestroyObject(s.sess, obj)
	s.mu.Unlock()
	if err != nil || len(attrs) != 1 {
		return nil, fmt.Errorf("keystore: reading the unwrapped key: %v", err)
	}
	plain := attrs[0].Value
	if len(plain) < 16 || subtle.ConstantTimeCompare(plain[len(plain)-16:], aadTag(aad)) != 1 {
		clear(plain)
		return nil, gmcrypto.ErrUnwrap
	}
	return plain[:len(plain)-16], nil
}

// References: "o" + label (a key pair inside the token) or "w" + wrapped.
const (
	refObject  = 'o'
	refWrapped = 'w'
)

func (s *PKCS11) label(id string) string { return "yibao/" + id }

// GenerateSigner makes an Ed25519 key pair inside the token; SM2 keys
// (which SoftHSM lacks) are made here and wrapped by the token.
func (s *PKCS11) GenerateSigner(alg Alg, id string) (ref, pub []byte, err error) {
	if alg != AlgEd25519 {
		priv, err := newPrivate(alg)
		if err != nil {
			return nil, nil, err
		}
		defer clear(priv)
		return s.ImportSigner(alg, id, priv)
	}
	label := s.label(id)
	var lastErr error
	for _, params := range [][]byte{ed25519OID, ed25519Curve} {
		s.mu.Lock()
		pubH, _, err := s.ctx.GenerateKeyPair(s.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
				pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			})
		if err != nil {
			s.mu.Unlock()
			lastErr = err
			continue
		}
		attrs, err := s.ctx.GetAttributeValue(s.sess, pubH, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		s.mu.Unlock()
		if err != nil || len(attrs) != 1 {
			return nil, nil, fmt.Errorf("keystore: reading the Ed25519 public key: %v", err)
		}
		point := attrs[0].Value
		var raw []byte
		if _, err := asn1.Unmarshal(point, &raw); err == nil && len(raw) == ed25519.PublicKeySize {
			point = raw
		}
		if len(point) != ed25519.PublicKeySize {
			return nil, nil, fmt.Errorf("keystore: the token's Ed25519 public key has %d bytes", len(point))
		}
		return append([]byte{refObject}, label...), point, nil
	}
	return nil, nil, fmt.Errorf("keystore: C_GenerateKeyPair (Ed25519): %w", lastErr)
}

// ImportSigner wraps a private key under the token's KEK.
func (s *PKCS11) ImportSigner(alg Alg, id string, private []byte) (ref, pub []byte, err error) {
	k, err := parseSigner(alg, private)
	if err != nil {
		return nil, nil, err
	}
	w, err := s.Wrap(private, signerAAD(alg, id))
	if err != nil {
		return nil, nil, err
	}
	return append([]byte{refWrapped}, w...), k.public(), nil
}

// Sign signs inside the token (Ed25519 objects) or with a key the token
// unwraps (SM2).
func (s *PKCS11) Sign(alg Alg, id string, ref, uid, msg []byte) ([]byte, error) {
	if len(ref) < 2 {
		return nil, fmt.Errorf("keystore: signing key %s: %w", id, errNotPKCS11)
	}
	switch ref[0] {
	case refObject:
		if alg != AlgEd25519 {
			return nil, fmt.Errorf("keystore: %s: token objects sign Ed25519 only here", id)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		hs, err := s.find(pkcs11.CKO_PRIVATE_KEY, string(ref[1:]))
		if err != nil {
			return nil, err
		}
		if len(hs) != 1 {
			return nil, fmt.Errorf("keystore: signing key %s: %d token objects labelled %q", id, len(hs), ref[1:])
		}
		if err := s.ctx.SignInit(s.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, hs[0]); err != nil {
			return nil, fmt.Errorf("keystore: C_SignInit: %w", err)
		}
		sig, err := s.ctx.Sign(s.sess, msg)
		if err != nil {
			return nil, fmt.Errorf("keystore: C_Sign: %w", err)
		}
		return sig, nil
	case refWrapped:
		return signWrapped(&s.keys, s.Unwrap, alg, id, ref, ref[1:], uid, msg)
	}
	return nil, fmt.Errorf("keystore: signing key %s: %w", id, errNotPKCS11)
}

// Destroy deletes a token-held key pair, or forgets a cached wrapped key.
func (s *PKCS11) Destroy(alg Alg, id string, ref []byte) error {
	if len(ref) < 2 {
		return nil
	}
	if ref[0] == refWrapped {
		s.keys.Delete(cacheKey(alg, id, ref))
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		hs, err := s.find(class, string(ref[1:]))
		if err != nil {
			return err
		}
		for _, h := range hs {
			if err := s.ctx.DestroyObject(s.sess, h); err != nil {
				return fmt.Errorf("keystore: C_DestroyObject: %w", err)
			}
		}
	}
	return nil
}

// Close logs out and releases the module.
func (s *PKCS11) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return nil
	}
	pkcs11Mu.Lock()
	pkcs11Openers[s.module]--
	last := pkcs11Openers[s.module] == 0
	if s.sess != 0 {
		if last { // the login is the process's, shared by its sessions
			s.ctx.Logout(s.sess)
		}
		s.ctx.CloseSession(s.sess)
	}
	if last {
		s.ctx.Finalize()
	}
	pkcs11Mu.Unlock()
	s.ctx.Destroy()
	s.ctx = nil
	return nil
}

package gmcrypto

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/emmansun/gmsm/sm4"
)

type vectors struct {
	SM3 []struct {
		Source string `json:"source"`
		Msg    string `json:"msg_hex"`
		Digest string `json:"digest"`
	} `json:"sm3"`
	SM4GCM []struct {
		Source                                 string `json:"source"`
		Key, Nonce, AAD, Plaintext, Ciphertext string
		Tag                                    string `json:"tag"`
	} `json:"sm4_gcm"`
	SM2Sign []struct {
		Source, UID, Msg, R, S string
		PrivateKey             string `json:"private_key"`
		PublicKey              string `json:"public_key"`
	} `json:"sm2_sign"`
}

func loadVectors(t *testing.T) vectors {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSM3Vectors(t *testing.T) {
	for _, v := range loadVectors(t).SM3 {
		got := SM3(unhex(t, v.Msg))
		if hex.EncodeToString(got[:]) != v.Digest {
			t.Errorf("%s: got %x", v.Source, got)
		}
	}
}

func TestSM4GCMVector(t *testing.T) {
	for _, v := range loadVectors(t).SM4GCM {
		b, _ := sm4.NewCipher(unhex(t, v.Key))
		aead, _ := cipher.NewGCM(b)
		out := aead.Seal(nil, unhex(t, v.Nonce), unhex(t, v.Plaintext), unhex(t, v.AAD))
		want := v.Ciphertext + v.Tag
		if hex.EncodeToString(out) != want {
			t.Errorf("%s: got %x", v.Source, out)
		}
	}
}

// TestHMACSM3Construction recomputes HMAC by its definition (RFC 2104)
// from raw SM3, independently of crypto/hmac.
func TestHMACSM3Construction(t *testing.T) {
	for _, key := range [][]byte{[]byte("k"), bytes.Repeat([]byte{7}, 64), bytes.Repeat([]byte{9}, 100)} {
		msg := []byte("yibao settlement 2026")
		k := key
		if len(k) > 64 {
			h := SM3(k)
			k = h[:]
		}
		k = append(append([]byte{}, k...), make([]byte, 64-len(k))...)
		ipad, opad := make([]byte, 64), make([]byte, 64)
		for i := range k {
			ipad[i], opad[i] = k[i]^0x36, k[i]^0x5c
		}
		inner := SM3(append(ipad, msg...))
		want := SM3(append(opad, inner[:]...))
		if got := HMACSM3(key, msg); !HMACEqual(got, want[:]) {
			t.Errorf("key len %d: HMAC-SM3 = %x, want %x", len(key), got, want)
		}
	}
}

func TestSM2SignVerify(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateKey(nil)
	msg := []byte("POST\n/api/v1/persons\n1700000000\nnonce\nabc")
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	uidSig, _ := k.SignUID([]byte("hospital-7"), msg)
	tampered := append([]byte{}, sig...)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name string
		ok   bool
	}{
		{"valid", k.Public().Verify(msg, sig)},
		{"valid with uid", k.Public().VerifyUID([]byte("hospital-7"), msg, uidSig)},
		{"wrong uid", !k.Public().VerifyUID([]byte("hospital-8"), msg, uidSig)},
		{"default uid vs custom", !k.Public().Verify(msg, uidSig)},
		{"tampered message", !k.Public().Verify(append(msg, '!'), sig)},
		{"tampered signature", !k.Public().Verify(msg, tampered)},
		{"wrong key", !other.Public().Verify(msg, sig)},
		{"garbage signature", !k.Public().Verify(msg, []byte("not der"))},
	}
	for _, c := range cases {
		if !c.ok {
			t.Errorf("%s: wrong outcome", c.name)
		}
	}
}

func TestKeyEncodings(t *testing.T) {
	k, _ := GenerateKey(nil)
	pemPriv, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParsePrivateKeyPEM(pemPriv)
	if err != nil || !bytes.Equal(k2.Bytes(), k.Bytes()) {
		t.Fatalf("private PEM round trip: %v", err)
	}
	pemPub, _ := MarshalPublicKeyPEM(k.Public())
	p2, err := ParsePublicKeyPEM(pemPub)
	if err != nil || !p2.Equal(k.Public()) {
		t.Fatalf("public PEM round trip: %v", err)
	}
	p3, err := ParsePublicKey(k.Public().Bytes())
	if err != nil || !p3.Equal(k.Public()) {
		t.Fatalf("raw public round trip: %v", err)
	}
	k3, err := ParsePrivateKey(k.Bytes())
	if err != nil || !k3.Public().Equal(k.Public()) {
		t.Fatalf("raw private round trip: %v", err)
	}
	offCurve := k.Public().Bytes()
	offCurve[64] ^= 1
	for name, b := range map[string][]byte{"off curve": offCurve, "short": offCurve[:30], "compressed tag": append([]byte{2}, offCurve[1:]...), "empty": nil} {
		if _, err := ParsePublicKey(b); err == nil {
			t.Errorf("ParsePublicKey accepted %s", name)
		}
	}
	if _, err := ParsePrivateKeyPEM([]byte("garbage")); err == nil {
		t.Error("garbage PEM accepted")
	}
	a, b := DeterministicKey([]byte("demo-1")), DeterministicKey([]byte("demo-1"))
	if !a.Public().Equal(b.Public()) || a.Public().Equal(DeterministicKey([]byte("demo-2")).Public()) {
		t.Error("DeterministicKey is not deterministic per seed")
	}
}

func TestKeyringRotation(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	old, err := NewKeyring("k1", map[string][]byte{"k1": k1})
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("person/1/id_number")
	sealed, err := old.Seal([]byte("370102198507160029"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("370102198507160029")) {
		t.Fatal("plaintext visible")
	}
	again, _ := old.Seal([]byte("370102198507160029"), aad)
	if bytes.Equal(sealed, again) {
		t.Fatal("sealing is deterministic; nonces must be random")
	}
	rotated, _ := NewKeyring("k2", map[string][]byte{"k1": k1, "k2": k2})
	if pt, err := rotated.Open(sealed, aad); err != nil || string(pt) != "370102198507160029" {
		t.Fatalf("old value after rotation: %q, %v", pt, err)
	}
	fresh, _ := rotated.Seal([]byte("x"), nil)
	if _, err := old.Open(fresh, nil); err == nil {
		t.Fatal("old ring opened a value sealed with an unknown key")
	}
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-3] ^= 1
	for name, c := range map[string]struct{ v, aad []byte }{
		"tampered": {tampered, aad}, "wrong aad": {sealed, []byte("person/2/id_number")},
		"truncated": {sealed[:10], aad}, "empty": {nil, aad},
	} {
		if _, err := rotated.Open(c.v, c.aad); err == nil {
			t.Errorf("%s value opened", name)
		}
	}
	if _, err := NewKeyring("k9", map[string][]byte{"k1": k1}); err == nil {
		t.Error("active key missing from ring accepted")
	}
	if _, err := NewKeyring("k1", map[string][]byte{"k1": k1[:8]}); err == nil {
		t.Error("short key accepted")
	}
}

func TestBlindIndexAndDerivation(t *testing.T) {
	key := []byte("index key")
	a := BlindIndex(key, "person.id_number", []byte("370102198507160029"))
	if !bytes.Equal(a, BlindIndex(key, "person.id_number", []byte("370102198507160029"))) {
		t.Error("not deterministic")
	}
	if bytes.Equal(a, BlindIndex(key, "person.phone", []byte("370102198507160029"))) {
		t.Error("domains collide")
	}
	if bytes.Equal(a, BlindIndex([]byte("other"), "person.id_number", []byte("370102198507160029"))) {
		t.Error("keys collide")
	}
	m := []byte("master secret 32 bytes long.....")
	if !bytes.Equal(DeriveKey(m, "a", 16), DeriveKey(m, "a", 16)) || bytes.Equal(DeriveKey(m, "a", 16), DeriveKey(m, "b", 16)) {
		t.Error("DeriveKey wrong")
	}
}

func TestPasswords(t *testing.T) {
	h, err := HashPassword("correct horse", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		hash, pw string
		ok       bool
		err      bool
	}{
		{h, "correct horse", true, false},
		{h, "correct horse ", false, false},
		{h, "", false, false},
		{"$pbkdf2-sm3$i=x$AAAA$AAAA", "a", false, true},
		{"plain", "plain", false, true},
		{"$bcrypt$i=10$AAAA$AAAA", "a", false, true},
	} {
		ok, err := CheckPassword(c.hash, c.pw)
		if ok != c.ok || (err != nil) != c.err {
			t.Errorf("CheckPassword(%q, %q) = %v, %v", c.hash, c.pw, ok, err)
		}
	}
}

func BenchmarkSM2Sign(b *testing.B) {
	k, _ := GenerateKey(nil)
	msg := bytes.Repeat([]byte("m"), 200)
	for b.Loop() {
		k.Sign(msg)
	}
}

func BenchmarkSM2Verify(b *testing.B) {
	k, _ := GenerateKey(nil)
	msg := bytes.Repeat([]byte("m"), 200)
	sig, _ := k.Sign(msg)
	for b.Loop() {
		k.Public().Verify(msg, sig)
	}
}

func BenchmarkSM3_1KiB(b *testing.B) {
	data := make([]byte, 1024)
	b.SetBytes(1024)
	for b.Loop() {
		SM3(data)
	}
}

func BenchmarkSM4GCMSeal_1KiB(b *testing.B) {
	kr, _ := NewKeyring("k1", map[string][]byte{"k1": make([]byte, 16)})
	data := make([]byte, 1024)
	b.SetBytes(1024)
	for b.Loop() {
		kr.Seal(data, nil)
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	key := make([]byte, 32)
	for b.Loop() {
		BlindIndex(key, "person.id_number", []byte("370102198507160029"))
	}
}

func BenchmarkHashPasswordDefault(b *testing.B) {
	for b.Loop() {
		HashPassword("a password", 0)
	}
}

func TestRawSignatures(t *testing.T) {
	k, _ := GenerateKey(nil)
	uid := []byte("YBECERT-TEST")
	msg := []byte("a dynamic code")
	sig, err := k.SignRaw(uid, msg)
	if err != nil || len(sig) != 64 {
		t.Fatalf("%v %d", err, len(sig))
	}
	cases := []struct {
		name      string
		uid, msg  []byte
		sig       []byte
		wantValid bool
	}{
		{"valid", uid, msg, sig, true},
		{"other uid", DefaultUID, msg, sig, false},
		{"other message", uid, []byte("another"), sig, false},
		{"flipped bit", uid, msg, append(append([]byte{}, sig[:10]...), append([]byte{sig[10] ^ 1}, sig[11:]...)...), false},
		{"short", uid, msg, sig[:63], false},
		{"zero", uid, msg, make([]byte, 64), false},
	}
	for _, c := range cases {
		if got := k.Public().VerifyRaw(c.uid, c.msg, c.sig); got != c.wantValid {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

func BenchmarkSM2VerifyRaw(b *testing.B) {
	k, _ := GenerateKey(nil)
	uid, msg := []byte("YBECERT-CODE"), make([]byte, 162)
	sig, _ := k.SignRaw(uid, msg)
	pub := k.Public()
	for b.Loop() {
		if !pub.VerifyRaw(uid, msg, sig) {
			b.Fatal("invalid")
		}
	}
}

// TestSM2StandardVector checks the standard's signature example: the
// public key derived from the private key, and the published (r, s)
// verifying under the standard's user ID — and failing under another.
func TestSM2StandardVector(t *testing.T) {
	v := loadVectors(t)
	if len(v.SM2Sign) == 0 {
		t.Fatal("no SM2 vectors")
	}
	for _, c := range v.SM2Sign {
		k, err := ParsePrivateKey(unhex(t, c.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.Public().Bytes(), unhex(t, c.PublicKey)) {
			t.Fatalf("%s: derived public key %X", c.Source, k.Public().Bytes())
		}
		sig := unhex(t, c.R+c.S)
		if !k.Public().VerifyRaw([]byte(c.UID), []byte(c.Msg), sig) {
			t.Fatalf("%s: the published signature does not verify", c.Source)
		}
		if k.Public().VerifyRaw([]byte("ALICE123@YAHOO.COM"), []byte(c.Msg), sig) {
			t.Fatalf("%s: verifies under another user ID", c.Source)
		}
	}
}

package tlog_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"yibao/audit/tlog"
	"yibao/gmcrypto"
)

func TestSM2Keys(t *testing.T) {
	k := gmcrypto.DeterministicKey([]byte("sm2 keys"))
	s, err := tlog.NewSM2Signer(origin, k)
	if err != nil {
		t.Fatal(err)
	}
	vkey := tlog.SM2VerifierKey(origin, k.Public())

	// The key ID: SHA-256(name || "\n" || 0xff "yibao/sm2" || point)[:4].
	h := sha256.Sum256([]byte(origin + "\n" + "\xffyibao/sm2" + string(k.Public().Bytes())))
	if got, want := s.KeyHash(), binary.BigEndian.Uint32(h[:4]); got != want {
		t.Errorf("key hash %08x, want %08x", got, want)
	}
	if want := fmt.Sprintf("%s+%08x+", origin, s.KeyHash()); !strings.HasPrefix(vkey, want) {
		t.Errorf("vkey %q, want prefix %q", vkey, want)
	}
	v, err := tlog.NewSM2Verifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != origin || v.KeyHash() != s.KeyHash() {
		t.Errorf("verifier %s %08x", v.Name(), v.KeyHash())
	}

	// A note signed with SM2 opens with the verifier, and the signature is
	// a plain SM2 signature over the note text.
	text := "hello\n"
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil || n.Text != text {
		t.Fatalf("note.Open: %v", err)
	}
	sig, _ := base64.StdEncoding.DecodeString(n.Sigs[0].Base64)
	if !k.Public().Verify([]byte(text), sig[4:]) {
		t.Error("signature is not SM2 over the note text")
	}
	if _, err := note.Open(msg, note.VerifierList(mustEdVerifier(t))); err == nil {
		t.Error("opened with an unrelated key")
	}

	// NewVerifier tells the two kinds apart.
	_, edKey, err := tlog.GenerateEd25519(origin)
	if err != nil {
		t.Fatal(err)
	}
	for _, vk := range []string{vkey, edKey} {
		if _, err := tlog.NewVerifier(vk); err != nil {
			t.Errorf("NewVerifier(%q): %v", vk, err)
		}
	}

	// Malformed or mismatched verifier keys.
	other := tlog.SM2VerifierKey(origin, gmcrypto.DeterministicKey([]byte("other")).Public())
	parts := strings.Split(vkey, "+")
	otherParts := strings.Split(other, "+")
	for name, bad := range map[string]string{
		"wrong hash":  parts[0] + "+" + otherParts[1] + "+" + parts[2],
		"renamed":     "other.example+" + parts[1] + "+" + parts[2],
		"Ed25519 key": edKey,
		"not base64":  parts[0] + "+" + parts[1] + "+!!",
		"short":       parts[0] + "+" + parts[1],
		"bad name":    "a b+" + parts[1] + "+" + parts[2],
		"point off-curve": func() string {
			b, _ := base64.StdEncoding.DecodeString(parts[2])
			b[len(b)-1] ^= 1
			kh := sha256.Sum256(append([]byte(origin+"\n"), b...))
			return fmt.Sprintf("%s+%08x+%s", origin, binary.BigEndian.Uint32(kh[:4]), base64.StdEncoding.EncodeToString(b))
		}(),
	} {
		if _, err := tlog.NewSM2Verifier(bad); err == nil {
			t.Errorf("%s: NewSM2Verifier accepted %q", name, bad)
		}
	}
	if _, err := tlog.NewSM2Signer("bad name", k); err == nil {
		t.Error("NewSM2Signer accepted a name with a space")
	}
}

func TestEd25519FromSeed(t *testing.T) {
	seed := sha256.Sum256([]byte("seed"))
	skey, vkey, err := tlog.Ed25519FromSeed(origin, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	s, err := tlog.NewEd25519Signer(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "x\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Error(err)
	}
	skey2, vkey2, _ := tlog.Ed25519FromSeed(origin, seed[:])
	if skey2 != skey || vkey2 != vkey {
		t.Error("not deterministic")
	}
	if _, _, err := tlog.Ed25519FromSeed(origin, seed[:5]); err == nil {
		t.Error("short seed accepted")
	}
}

func mustEdVerifier(t *testing.T) note.Verifier {
	_, vkey, err := tlog.GenerateEd25519(origin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

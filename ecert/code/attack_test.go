package code_test

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"yibao/ecert/code"
	"yibao/gmcrypto"
)

// q3Mutations is how many seeded random mutations of a good code are
// checked; a constant, so that -short runs the same figure.
const q3Mutations = 10_000

// TestQ3ForgedAndAlteredCodes is row Q3 of the test matrix
// (reliability-security.md §8), offline: every single-bit flip of a good
// code, every truncation of its text, every one-character substitution,
// signatures under the wrong key or SM2 user ID or malleated, and seeded
// random mutations re-encoded as valid Base45 — none verifies, each is
// refused with a stable reason, and nothing panics.
func TestQ3ForgedAndAlteredCodes(t *testing.T) {
	c := newChain(t)
	good := c.code(t, now, 1)
	raw, err := code.DecodeBase45(good[len(code.Prefix):])
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[code.Reason]int{}
	tried, accepted := 0, 0
	check := func(what, text string) {
		t.Helper()
		tried++
		_, err := c.verifier.Verify(text, now)
		if err == nil {
			accepted++
			t.Errorf("%s: accepted", what)
			return
		}
		r := code.ReasonOf(err)
		if r == "" {
			t.Errorf("%s: refused without a reason: %v", what, err)
		}
		reasons[r]++
	}
	enc := func(b []byte) string { return code.Prefix + code.EncodeBase45(b) }

	for i := range raw {
		for bit := range 8 {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			check("bit flip", enc(b))
		}
	}
	flips := tried
	for n := range len(good) {
		check("truncated", good[:n])
	}
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
	for i := len(code.Prefix); i < len(good); i++ {
		j := strings.IndexByte(alphabet, good[i])
		check("substituted", good[:i]+string(alphabet[(j+1)%len(alphabet)])+good[i+1:])
	}
	// Signatures over the right bytes that must not verify.
	tbs := raw[:162]
	other := gmcrypto.DeterministicKey([]byte("another device"))
	for _, s := range []struct {
		key *gmcrypto.PrivateKey
		uid string
	}{
		{other, "YBECERT-CODE-V1"},    // another device
		{c.device, "YBECERT-CRED-V1"}, // right key, a credential's user ID
		{c.device, "YBECERT-ROOT-V1"},
		{c.device, "1234567812345678"}, // right key, the default user ID
		{c.platform, "YBECERT-CODE-V1"},
	} {
		sig, err := s.key.SignRaw([]byte(s.uid), tbs)
		if err != nil {
			t.Fatal(err)
		}
		check("wrong key or user ID", enc(append(append([]byte(nil), tbs...), sig...)))
	}
	// Malleations of the genuine signature.
	sig := raw[162:]
	for _, m := range [][]byte{
		append(append([]byte(nil), sig[32:]...), sig[:32]...), // r and s swapped
		make([]byte, 64),                      // zero
		append(make([]byte, 32), sig[32:]...), // r = 0
		append(append([]byte(nil), sig[:32]...), make([]byte, 32)...), // s = 0
		[]byte(strings.Repeat("\xff", 64)),                            // r, s ≥ n
	} {
		check("malleated signature", enc(append(append([]byte(nil), tbs...), m...)))
	}
	// Seeded random mutations: 1–8 random bytes changed, sometimes a
	// length change, always valid Base45 so that they reach the checks.
	rng := rand.New(rand.NewPCG(20261123, 6238))
	for range q3Mutations {
		b := append([]byte(nil), raw...)
		for range 1 + rng.IntN(8) {
			b[rng.IntN(len(b))] = byte(rng.UintN(256))
		}
		switch rng.IntN(10) {
		case 0:
			b = b[:rng.IntN(len(b))]
		case 1:
			b = append(b, byte(rng.UintN(256)))
		}
		if string(b) == string(raw) {
			continue
		}
		check("random mutation", enc(b))
	}
	// The genuine code still verifies: the checks above are not vacuous.
	if _, err := c.verifier.Verify(good, now); err != nil {
		t.Fatal(err)
	}
	var rs []string
	for r, n := range reasons {
		rs = append(rs, string(r)+" "+itoa(n))
	}
	sort.Strings(rs)
	t.Logf("Q3 (offline): %d forged or altered codes (%d bit flips, %d truncations, %d substitutions, 10 signature forgeries, %d random mutations): accepted %d, refusals by reason: %s",
		tried, flips, len(good), len(good)-len(code.Prefix), q3Mutations, accepted, strings.Join(rs, ", "))
	if accepted != 0 {
		t.Fatal("Q3 failed")
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

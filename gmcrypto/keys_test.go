package gmcrypto

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// TestKeyringFollowsRotation: a ring loads a key id it does not hold
// through its loader, Update switches the active key, Reseal moves a value
// to the active key and leaves one already there alone.
func TestKeyringFollowsRotation(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	writer, _ := NewKeyring("k2", map[string][]byte{"k1": k1, "k2": k2})
	reader, _ := NewKeyring("k1", map[string][]byte{"k1": k1})
	v2, _ := writer.Seal([]byte("new"), []byte("aad"))
	if id, ok := SealedKeyID(v2); !ok || id != "k2" {
		t.Fatalf("SealedKeyID = %q %v", id, ok)
	}
	if _, ok := SealedKeyID([]byte{9, 9}); ok {
		t.Fatal("SealedKeyID of garbage")
	}
	if _, err := reader.Open(v2, []byte("aad")); err == nil {
		t.Fatal("opened under an unknown key without a loader")
	}
	var calls int
	var mu sync.Mutex
	reader.SetLoader(func(id string) ([]byte, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		if id == "k2" {
			return k2, nil
		}
		return nil, errors.New("no such key")
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if pt, err := reader.Open(v2, []byte("aad")); err != nil || string(pt) != "new" {
				t.Errorf("through the loader: %q %v", pt, err)
			}
		}()
	}
	wg.Wait()
	if reader.ActiveKeyID() != "k1" {
		t.Fatal("a loaded key became active")
	}
	if calls > 8 || calls < 1 {
		t.Fatalf("loader called %d times", calls)
	}
	if _, err := reader.Open(append([]byte{1, 2, 'k', '9'}, make([]byte, 40)...), nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("unknown id: %v", err)
	}
	v1, _ := reader.Seal([]byte("old"), []byte("aad"))
	if err := reader.Update("k2", map[string][]byte{"k1": k1, "k2": k2}); err != nil {
		t.Fatal(err)
	}
	moved, changed, err := reader.Reseal(v1, []byte("aad"))
	if err != nil || !changed {
		t.Fatalf("reseal: %v %v", changed, err)
	}
	if id, _ := SealedKeyID(moved); id != "k2" {
		t.Fatalf("resealed under %s", id)
	}
	if pt, err := writer.Open(moved, []byte("aad")); err != nil || string(pt) != "old" {
		t.Fatalf("resealed value: %q %v", pt, err)
	}
	if same, changed, _ := reader.Reseal(moved, []byte("aad")); changed || !bytes.Equal(same, moved) {
		t.Fatal("a value under the active key was resealed")
	}
	if _, _, err := reader.Reseal(v1, []byte("other aad")); err == nil {
		t.Fatal("resealed with the wrong associated data")
	}
	if err := reader.Update("k3", map[string][]byte{"k1": k1}); err == nil {
		t.Fatal("an active key missing from the update was accepted")
	}
	if got := reader.KeyIDs(); len(got) != 2 || got[0] != "k1" || got[1] != "k2" {
		t.Fatalf("KeyIDs = %v", got)
	}
}

func TestWrapKey(t *testing.T) {
	kek, other := bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{8}, 16)
	key := bytes.Repeat([]byte{0x42}, 16)
	w, err := WrapKey(kek, key, []byte("k2/pii"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, key) {
		t.Fatal("key visible in the wrapped form")
	}
	if got, err := UnwrapKey(kek, w, []byte("k2/pii")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("unwrap: %v", err)
	}
	tampered := append([]byte(nil), w...)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct{ kek, w, aad []byte }{
		"another KEK": {other, w, []byte("k2/pii")}, "another id": {kek, w, []byte("k3/pii")},
		"tampered": {kek, tampered, []byte("k2/pii")}, "truncated": {kek, w[:10], []byte("k2/pii")},
	} {
		if _, err := UnwrapKey(c.kek, c.w, c.aad); !errors.Is(err, ErrUnwrap) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := WrapKey(kek[:8], key, nil); err == nil {
		t.Error("short KEK accepted")
	}
}

// TestStoreKey: an SM2 key whose private half is elsewhere signs through
// its function, verifies like any key and never gives its scalar.
func TestStoreKey(t *testing.T) {
	inner, _ := GenerateKey(nil)
	var uids [][]byte
	k := NewStoreKey(inner.Public(), func(uid, msg []byte) ([]byte, error) {
		uids = append(uids, uid)
		return inner.SignUID(uid, msg)
	})
	if !k.InStore() || inner.InStore() || !k.Public().Equal(inner.Public()) {
		t.Fatal("store key identity")
	}
	sig, err := k.Sign([]byte("m"))
	if err != nil || !inner.Public().Verify([]byte("m"), sig) {
		t.Fatalf("Sign: %v", err)
	}
	raw, err := k.SignRaw([]byte("uid"), []byte("m"))
	if err != nil || !k.Public().VerifyRaw([]byte("uid"), []byte("m"), raw) {
		t.Fatalf("SignRaw: %v", err)
	}
	if len(uids) != 2 || !bytes.Equal(uids[0], DefaultUID) || string(uids[1]) != "uid" {
		t.Fatalf("uids %q", uids)
	}
	if _, err := MarshalPrivateKeyPEM(k); err == nil {
		t.Fatal("a store key was exported")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Bytes of a store key did not panic")
		}
	}()
	k.Bytes()
}

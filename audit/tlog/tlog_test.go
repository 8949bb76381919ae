package tlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"yibao/audit/tlog"
)

func TestAppendAndReadBack(t *testing.T) {
	f := getFixture(t)
	if len(f.dupIdx) > 0 {
		t.Fatalf("index assignment: %v", f.dupIdx)
	}
	for i, d := range f.data {
		if d == nil {
			t.Fatalf("no entry got index %d", i)
		}
	}
	if f.size != 2000 {
		t.Errorf("Size = %d, want 2000", f.size)
	}
	if len(f.scanned) != 2000 {
		t.Fatalf("Scan gave %d entries", len(f.scanned))
	}
	for i := range f.scanned {
		if !bytes.Equal(f.scanned[i], f.data[i]) {
			t.Fatalf("Scan: entry %d = %.40q…, want %.40q…", i, f.scanned[i], f.data[i])
		}
	}
	for i, e := range f.entries {
		if !bytes.Equal(e, f.data[i]) {
			t.Errorf("Entry(%d) = %.40q…, want %.40q…", i, e, f.data[i])
		}
	}
	// AddMany: results in the order of its input.
	for i, idx := range f.addMany {
		if got, want := entryID(f.data[idx]), fmt.Sprintf("e-%06d", i); got != want {
			t.Errorf("AddMany result %d is index %d holding %s, want %s", i, idx, got, want)
		}
	}
	for name, cp := range map[string]string{"cp100": f.cp100, "cp2000": f.cp2000} {
		info, err := tlog.OpenCheckpoint([]byte(cp), tlog.RequireAll(f.keys.edV, f.keys.smV))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := map[string]uint64{"cp100": 100, "cp2000": 2000}[name]; info.Size != want || info.Origin != origin || len(info.Signers) != 2 {
			t.Errorf("%s: %+v, want size %d, origin %s, 2 signatures", name, info, want, origin)
		}
	}
}

func TestReceipts(t *testing.T) {
	f := getFixture(t)
	k := f.keys
	other := newKeys(t, origin, "somebody else's keys")
	for _, r := range f.receipts {
		for name, vs := range map[string]note.Verifiers{
			"both":        k.verifiers(),
			"Ed25519":     note.VerifierList(k.edV),
			"SM2":         note.VerifierList(k.smV),
			"require all": tlog.RequireAll(k.edV, k.smV),
		} {
			if err := tlog.VerifyReceipt(r, vs); err != nil {
				t.Errorf("receipt %d with %s: %v", r.Index, name, err)
			}
		}
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back tlog.Receipt
		if err := json.Unmarshal(j, &back); err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyReceipt(&back, k.verifiers()); err != nil {
			t.Errorf("receipt %d after JSON: %v", r.Index, err)
		}
		if !strings.Contains(string(j), `"proof":["`) {
			t.Errorf("receipt JSON %s", j)
		}
	}

	// A receipt in the middle of the tree (long proof) to tamper with.
	var base *tlog.Receipt
	for _, r := range f.receipts {
		if r.Index == 1500 {
			base = r
		}
	}
	clone := func() *tlog.Receipt {
		var c tlog.Receipt
		j, _ := json.Marshal(base)
		json.Unmarshal(j, &c)
		return &c
	}
	edHash, smHash := k.edV.KeyHash(), k.smV.KeyHash()
	cases := []struct {
		name      string
		tamper    func(r *tlog.Receipt)
		verifiers note.Verifiers
		want      error // nil: must verify
	}{
		{"untouched", func(r *tlog.Receipt) {}, nil, nil},
		{"data byte changed", func(r *tlog.Receipt) { r.Data[10] ^= 1 }, nil, tlog.ErrNotIncluded},
		{"data extended", func(r *tlog.Receipt) { r.Data = append(r.Data, ' ') }, nil, tlog.ErrNotIncluded},
		{"another entry's data", func(r *tlog.Receipt) { r.Data = f.data[1501] }, nil, tlog.ErrNotIncluded},
		{"index+1", func(r *tlog.Receipt) { r.Index++ }, nil, tlog.ErrNotIncluded},
		{"index-1", func(r *tlog.Receipt) { r.Index-- }, nil, tlog.ErrNotIncluded},
		{"index beyond size", func(r *tlog.Receipt) { r.Index = 2000 }, nil, tlog.ErrNotIncluded},
		{"proof hash changed", func(r *tlog.Receipt) { r.Proof[3][0] ^= 0x80 }, nil, tlog.ErrNotIncluded},
		{"last proof hash changed", func(r *tlog.Receipt) { r.Proof[len(r.Proof)-1][31] ^= 1 }, nil, tlog.ErrNotIncluded},
		{"proof hash dropped", func(r *tlog.Receipt) { r.Proof = r.Proof[:len(r.Proof)-1] }, nil, tlog.ErrNotIncluded},
		{"proof hash added", func(r *tlog.Receipt) { r.Proof = append(r.Proof, r.Proof[0]) }, nil, tlog.ErrNotIncluded},
		{"proof hashes swapped", func(r *tlog.Receipt) { r.Proof[0], r.Proof[1] = r.Proof[1], r.Proof[0] }, nil, tlog.ErrNotIncluded},
		{"proof hash short", func(r *tlog.Receipt) { r.Proof[2] = r.Proof[2][:31] }, nil, tlog.ErrMalformed},
		{"no proof", func(r *tlog.Receipt) { r.Proof = nil }, nil, tlog.ErrNotIncluded},
		{"older checkpoint not covering the index", func(r *tlog.Receipt) { r.Checkpoint = f.cp100 }, nil, tlog.ErrNotIncluded},
		{"checkpoint re-signed by other keys", func(r *tlog.Receipt) { r.Checkpoint = resign(t, r.Checkpoint, other.ed, other.sm) }, nil, tlog.ErrBadSignature},
		{"checkpoint re-signed by other keys plus ours", func(r *tlog.Receipt) {
			// An attacker cannot add our signature to a text we did not sign.
			text, sigs := splitNote(t, r.Checkpoint)
			text = strings.Replace(text, "\n2000\n", "\n2001\n", 1)
			r.Checkpoint = joinNote(text, sigs)
		}, nil, tlog.ErrBadSignature},
		{"checkpoint size edited", func(r *tlog.Receipt) {
			r.Checkpoint = strings.Replace(r.Checkpoint, "\n2000\n", "\n1999\n", 1)
		}, nil, tlog.ErrBadSignature},
		{"SM2 signature removed, SM2 verifier only", func(r *tlog.Receipt) { r.Checkpoint = withoutSig(t, r.Checkpoint, smHash) }, note.VerifierList(k.smV), tlog.ErrBadSignature},
		{"SM2 signature removed, both required", func(r *tlog.Receipt) { r.Checkpoint = withoutSig(t, r.Checkpoint, smHash) }, tlog.RequireAll(k.edV, k.smV), tlog.ErrBadSignature},
		{"SM2 signature removed, either accepted", func(r *tlog.Receipt) { r.Checkpoint = withoutSig(t, r.Checkpoint, smHash) }, k.verifiers(), nil},
		{"Ed25519 signature removed, Ed25519 verifier only", func(r *tlog.Receipt) { r.Checkpoint = withoutSig(t, r.Checkpoint, edHash) }, note.VerifierList(k.edV), tlog.ErrBadSignature},
		{"Ed25519 signature removed, SM2 verifier only", func(r *tlog.Receipt) { r.Checkpoint = withoutSig(t, r.Checkpoint, edHash) }, note.VerifierList(k.smV), nil},
		{"all signatures removed", func(r *tlog.Receipt) { text, _ := splitNote(t, r.Checkpoint); r.Checkpoint = joinNote(text, nil) }, nil, tlog.ErrBadSignature},
		{"SM2 signature corrupted", func(r *tlog.Receipt) {
			text, sigs := splitNote(t, r.Checkpoint)
			for i, s := range sigs {
				if sigHash(t, s) == smHash {
					sigs[i] = s[:len(s)-6] + "AAAA=="
				}
			}
			r.Checkpoint = joinNote(text, sigs)
		}, k.verifiers(), tlog.ErrBadSignature},
		{"Ed25519 signature of another key under our name", func(r *tlog.Receipt) {
			r.Checkpoint = resign(t, r.Checkpoint, other.ed)
		}, note.VerifierList(k.edV), tlog.ErrBadSignature},
		{"verified with another log's keys", func(r *tlog.Receipt) {}, other.verifiers(), tlog.ErrBadSignature},
		{"verified with no keys", func(r *tlog.Receipt) {}, note.VerifierList(), tlog.ErrBadSignature},
		{"checkpoint of another origin signed by its own keys", func(r *tlog.Receipt) {
			ok := newKeys(t, "yibao.example/log/110000", "other origin")
			text, _ := splitNote(t, r.Checkpoint)
			b, _ := note.Sign(&note.Note{Text: strings.Replace(text, origin, "yibao.example/log/110000", 1)}, ok.ed)
			r.Checkpoint = string(b)
		}, k.verifiers(), tlog.ErrBadSignature},
		{"our key on a checkpoint of another origin", func(r *tlog.Receipt) {
			text, _ := splitNote(t, r.Checkpoint)
			b, _ := note.Sign(&note.Note{Text: strings.Replace(text, origin, "yibao.example/log/110000", 1)}, k.ed, k.sm)
			r.Checkpoint = string(b)
		}, k.verifiers(), tlog.ErrBadSignature},
		{"garbage checkpoint", func(r *tlog.Receipt) { r.Checkpoint = "hello" }, nil, tlog.ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := clone()
			c.tamper(r)
			vs := c.verifiers
			if vs == nil {
				vs = k.verifiers()
			}
			err := tlog.VerifyReceipt(r, vs)
			switch {
			case c.want == nil && err != nil:
				t.Errorf("VerifyReceipt: %v, want success", err)
			case c.want != nil && !errors.Is(err, c.want):
				t.Errorf("VerifyReceipt: %v, want %v", err, c.want)
			}
		})
	}
	if err := tlog.VerifyReceipt(nil, k.verifiers()); !errors.Is(err, tlog.ErrMalformed) {
		t.Errorf("nil receipt: %v", err)
	}
}

func TestCheckpointConsistency(t *testing.T) {
	f := getFixture(t)
	vs := f.keys.verifiers()
	flipped := func(p [][]byte, i int) [][]byte {
		q := make([][]byte, len(p))
		for j := range p {
			q[j] = bytes.Clone(p[j])
		}
		q[i][0] ^= 1
		return q
	}
	otherOrigin := newKeys(t, "yibao.example/log/110000", "other origin")
	cpOther := resign(t, strings.Replace(f.cp100, origin, "yibao.example/log/110000", 1), otherOrigin.ed)
	cases := []struct {
		name       string
		old, new   string
		proof      [][]byte
		verifiers  note.Verifiers
		want       error
		wantSucces bool
	}{
		{"100 to 2000", f.cp100, f.cp2000, f.cons, vs, nil, true},
		{"100 to 2000, both signatures required", f.cp100, f.cp2000, f.cons, tlog.RequireAll(f.keys.edV, f.keys.smV), nil, true},
		{"same checkpoint", f.cp2000, f.cp2000, nil, vs, nil, true},
		{"2000 to 100", f.cp2000, f.cp100, f.cons, vs, tlog.ErrRollback, false},
		{"split view: other log, same size", f.cp100, f.cpB100, nil, vs, tlog.ErrSplitView, false},
		{"other log's 100 to 2000", f.cpB100, f.cp2000, f.cons, vs, tlog.ErrInconsistent, false},
		{"proof hash changed", f.cp100, f.cp2000, flipped(f.cons, 0), vs, tlog.ErrInconsistent, false},
		{"proof hash changed (last)", f.cp100, f.cp2000, flipped(f.cons, len(f.cons)-1), vs, tlog.ErrInconsistent, false},
		{"proof truncated", f.cp100, f.cp2000, f.cons[:len(f.cons)-1], vs, tlog.ErrInconsistent, false},
		{"no proof", f.cp100, f.cp2000, nil, vs, tlog.ErrInconsistent, false},
		{"new checkpoint signed by another key", f.cp100, resign(t, f.cp2000, newKeys(t, origin, "x").ed), f.cons, vs, tlog.ErrBadSignature, false},
		{"old checkpoint unsigned", withoutSig(t, withoutSig(t, f.cp100, f.keys.edV.KeyHash()), f.keys.smV.KeyHash()), f.cp2000, f.cons, vs, tlog.ErrBadSignature, false},
		{"other origin", cpOther, f.cp2000, f.cons, note.VerifierList(f.keys.edV, f.keys.smV, otherOrigin.edV), tlog.ErrWrongOrigin, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := tlog.VerifyCheckpointConsistency(c.old, c.new, c.proof, c.verifiers)
			switch {
			case c.wantSucces && err != nil:
				t.Errorf("got %v, want success", err)
			case !c.wantSucces && !errors.Is(err, c.want):
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyTreeClean(t *testing.T) {
	f := getFixture(t)
	dir := copyDir(t, f.dir)
	rep, err := tlog.VerifyTree(t.Context(), dir, tlog.RequireAll(f.keys.edV, f.keys.smV), f.cp100, f.cp2000)
	if err != nil {
		t.Fatalf("VerifyTree: %v\n%+v", err, rep)
	}
	if rep.Size != 2000 || !bytes.Equal(rep.Root, rep.CheckpointRoot) || rep.Origin != origin || rep.IntegratedSize != 2000 {
		t.Errorf("report %+v", rep)
	}
	// 2000 entries: bundles 0–6 full and 7 partial; tiles 0/0–0/7 and 1/0.
	if rep.Bundles != 8 || rep.Tiles != 9 {
		t.Errorf("checked %d bundles and %d tiles, want 8 and 9", rep.Bundles, rep.Tiles)
	}
	if rep.Fsck != "ok" || len(rep.Warnings) != 0 {
		t.Errorf("fsck %q, warnings %q", rep.Fsck, rep.Warnings)
	}
	// The other log too, on its own.
	if rep, err := tlog.VerifyTree(t.Context(), copyDir(t, f.dirB), f.keys.verifiers()); err != nil || rep.Size != 100 {
		t.Errorf("log B: %v %+v", err, rep)
	}
}

func TestVerifyTreeTamper(t *testing.T) {
	f := getFixture(t)
	k := f.keys
	write := func(t *testing.T, dir, name string, edit func([]byte) []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, edit(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(t *testing.T, dir, name string) {
		t.Helper()
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	// entryOffsets returns where each entry of a bundle starts.
	entryOffsets := func(b []byte) []int {
		var offs []int
		for i := 0; i < len(b); i += 2 + (int(b[i])<<8 | int(b[i+1])) {
			offs = append(offs, i)
		}
		return offs
	}
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		known  []string
		want   error
	}{
		{"byte of an entry edited", func(t *testing.T, dir string) {
			write(t, dir, "tile/entries/003", func(b []byte) []byte { b[1000] ^= 1; return b })
		}, nil, tlog.ErrCorrupt},
		{"byte of the partial bundle edited", func(t *testing.T, dir string) {
			write(t, dir, "tile/entries/007.p/208", func(b []byte) []byte { b[len(b)-5] ^= 1; return b })
		}, nil, tlog.ErrCorrupt},
		{"entry length prefix edited", func(t *testing.T, dir string) {
			write(t, dir, "tile/entries/001", func(b []byte) []byte { b[0] ^= 0x80; return b })
		}, nil, tlog.ErrCorrupt},
		{"entry bundle deleted", func(t *testing.T, dir string) { remove(t, dir, "tile/entries/002") }, nil, tlog.ErrMissing},
		{"partial entry bundle deleted", func(t *testing.T, dir string) { remove(t, dir, "tile/entries/007.p/208") }, nil, tlog.ErrMissing},
		{"hash tile deleted", func(t *testing.T, dir string) { remove(t, dir, "tile/0/004") }, nil, tlog.ErrMissing},
		{"level-1 tile deleted", func(t *testing.T, dir string) { remove(t, dir, "tile/1/000.p/7") }, nil, tlog.ErrMissing},
		{"two entries swapped", func(t *testing.T, dir string) {
			write(t, dir, "tile/entries/005", func(b []byte) []byte {
				o := entryOffsets(b)
				e10, e11 := bytes.Clone(b[o[10]:o[11]]), bytes.Clone(b[o[11]:o[12]])
				out := append(append(append(bytes.Clone(b[:o[10]]), e11...), e10...), b[o[12]:]...)
				return out
			})
		}, nil, tlog.ErrCorrupt},
		{"two bundles swapped", func(t *testing.T, dir string) {
			a, b := filepath.Join(dir, "tile/entries/001"), filepath.Join(dir, "tile/entries/002")
			os.Rename(a, a+".tmp")
			os.Rename(b, a)
			os.Rename(a+".tmp", b)
		}, nil, tlog.ErrCorrupt},
		{"entry removed from a bundle", func(t *testing.T, dir string) {
			write(t, dir, "tile/entries/004", func(b []byte) []byte { o := entryOffsets(b); return append(b[:o[7]], b[o[8]:]...) })
		}, nil, tlog.ErrCorrupt},
		{"entry appended to a full bundle", func(t *testing.T, dir string) {
			write(t, dir, "tile/entries/000", func(b []byte) []byte { return append(b, 0, 1, 'x') })
		}, nil, tlog.ErrCorrupt},
		{"tile truncated", func(t *testing.T, dir string) {
			write(t, dir, "tile/0/001", func(b []byte) []byte { return b[:len(b)/2] })
		}, nil, tlog.ErrCorrupt},
		{"tile truncated mid-hash", func(t *testing.T, dir string) {
			write(t, dir, "tile/0/006", func(b []byte) []byte { return b[:len(b)-7] })
		}, nil, tlog.ErrCorrupt},
		{"entry bundle truncated", func(t *testing.T, dir string) {
			write(t, dir, "tile/entries/006", func(b []byte) []byte { return b[:len(b)-100] })
		}, nil, tlog.ErrCorrupt},
		{"hash in a tile edited", func(t *testing.T, dir string) {
			write(t, dir, "tile/0/002", func(b []byte) []byte { b[32*17] ^= 1; return b })
		}, nil, tlog.ErrCorrupt},
		{"checkpoint rolled back (seen by a witness's last checkpoint)", func(t *testing.T, dir string) {
			write(t, dir, "checkpoint", func([]byte) []byte { return []byte(f.cp100) })
		}, []string{f.cp2000}, tlog.ErrRollback},
		{"log B in place of log A, size 100 (split view)", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			if err := os.Rename(copyDir(t, f.dirB), dir); err != nil {
				t.Fatal(err)
			}
		}, []string{f.cp100}, tlog.ErrSplitView},
		{"checkpoint re-signed by another key", func(t *testing.T, dir string) {
			write(t, dir, "checkpoint", func(b []byte) []byte { return []byte(resign(t, string(b), newKeys(t, origin, "forger").ed)) })
		}, nil, tlog.ErrBadSignature},
		{"checkpoint claims another root (signature kept)", func(t *testing.T, dir string) {
			write(t, dir, "checkpoint", func(b []byte) []byte {
				text, sigs := splitNote(t, string(b))
				lines := strings.Split(text, "\n")
				lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
				return []byte(joinNote(strings.Join(lines, "\n"), sigs))
			})
		}, nil, tlog.ErrBadSignature},
		{"another log's checkpoint of the same size and keys", func(t *testing.T, dir string) {
			// The whole directory of log B, but log A's checkpoint of size 100.
			os.RemoveAll(dir)
			if err := os.Rename(copyDir(t, f.dirB), dir); err != nil {
				t.Fatal(err)
			}
			write(t, dir, "checkpoint", func([]byte) []byte { return []byte(f.cp100) })
		}, nil, tlog.ErrInconsistent},
		{"SM2 signature stripped", func(t *testing.T, dir string) {
			write(t, dir, "checkpoint", func(b []byte) []byte { return []byte(withoutSig(t, string(b), k.smV.KeyHash())) })
		}, nil, tlog.ErrBadSignature},
		{"private tree state rolled back", func(t *testing.T, dir string) {
			write(t, dir, ".state/treeState", func([]byte) []byte {
				return []byte(`{"size":1000,"root":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`)
			})
		}, nil, tlog.ErrInconsistent},
		{"checkpoint deleted", func(t *testing.T, dir string) { remove(t, dir, "checkpoint") }, nil, tlog.ErrMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, f.dir)
			if _, err := tlog.VerifyTree(t.Context(), dir, tlog.RequireAll(k.edV, k.smV), c.known...); err != nil {
				t.Fatalf("untouched copy: %v", err)
			}
			c.tamper(t, dir)
			rep, err := tlog.VerifyTree(t.Context(), dir, tlog.RequireAll(k.edV, k.smV), c.known...)
			if !errors.Is(err, c.want) {
				t.Fatalf("VerifyTree: %v, want %v\nreport: %+v", err, c.want, rep)
			}
			if rep.OK() {
				t.Errorf("report OK despite %v", err)
			}
			t.Logf("found: %v", err)
		})
	}

	// A witness saw size 100 of another history (log B under the same
	// keys): log A's tree does not extend it.
	if _, err := tlog.VerifyTree(t.Context(), copyDir(t, f.dir), k.verifiers(), f.cpB100); !errors.Is(err, tlog.ErrInconsistent) {
		t.Errorf("known checkpoint of another history: %v", err)
	}

	// Without the witness's checkpoint a rollback is visible only as the
	// private tree state running ahead of the checkpoint.
	dir := copyDir(t, f.dir)
	write(t, dir, "checkpoint", func([]byte) []byte { return []byte(f.cp100) })
	rep, err := tlog.VerifyTree(t.Context(), dir, k.verifiers())
	if err != nil || rep.Size != 100 || rep.IntegratedSize != 2000 || len(rep.Warnings) == 0 {
		t.Errorf("rolled back, no known checkpoint: %v %+v", err, rep)
	}
}

func TestReopenAndRecover(t *testing.T) {
	f := getFixture(t)
	k := f.keys
	ctx := t.Context()
	dir := copyDir(t, f.dir)

	if _, err := tlog.Open(ctx, tlog.Config{Dir: dir, Origin: "yibao.example/log/110000", Ed25519: newKeys(t, "yibao.example/log/110000", "x").ed, SM2: newKeys(t, "yibao.example/log/110000", "x").sm}); !errors.Is(err, tlog.ErrWrongOrigin) {
		t.Errorf("open with another origin: %v", err)
	}
	l, err := tlog.Open(ctx, tlog.Config{Dir: dir, Origin: origin, Ed25519: k.ed, SM2: k.sm})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := tlog.Open(ctx, tlog.Config{Dir: dir, Origin: origin, Ed25519: k.ed, SM2: k.sm}); err == nil {
		t.Fatal("a second writer opened the same directory")
	}

	// The caller's table recorded indices for all but the last entries:
	// the process died between Add and recording. Recovery: scan from the
	// first unaccounted index to Size and match entries by their ID.
	recorded := map[string]uint64{}
	for i, d := range f.data[:1990] {
		recorded[entryID(d)] = uint64(i)
	}
	pending := map[string]bool{}
	for _, d := range f.data[1990:] {
		pending[entryID(d)] = true
	}
	pending["e-999999"] = true // never appended
	size, err := l.Size(ctx)
	if err != nil || size != 2000 {
		t.Fatalf("Size after reopening = %d, %v", size, err)
	}
	if err := l.Scan(ctx, uint64(len(recorded)), size, func(i uint64, d []byte) error {
		id := entryID(d)
		if !pending[id] {
			return fmt.Errorf("entry %d (%s) is not pending", i, id)
		}
		recorded[id] = i
		delete(pending, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || !pending["e-999999"] || len(recorded) != 2000 {
		t.Fatalf("after recovery: pending %v, %d recorded", pending, len(recorded))
	}
	d := payload("a", 999999)
	idx, err := l.Add(ctx, d)
	if err != nil || idx != 2000 {
		t.Fatalf("Add after reopening = %d, %v", idx, err)
	}
	cp, err := l.AwaitIntegrated(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Receipt(ctx, idx, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyReceipt(r, tlog.RequireAll(k.edV, k.smV)); err != nil {
		t.Error(err)
	}
	cons, err := l.Consistency(ctx, 2000, 2001)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyCheckpointConsistency(f.cp2000, string(cp), cons, k.verifiers()); err != nil {
		t.Errorf("2000 → 2001: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tlog.VerifyTree(ctx, dir, k.verifiers(), f.cp100, f.cp2000, string(cp)); err != nil {
		t.Errorf("VerifyTree after growing: %v", err)
	}
}

func TestErrors(t *testing.T) {
	k := newKeys(t, origin, "errors")
	ctx := t.Context()
	dir := t.TempDir()
	l, err := tlog.Open(ctx, tlog.Config{Dir: dir, Origin: origin, Ed25519: k.ed, SM2: k.sm})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A new log publishes a checkpoint of size 0 at once.
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := tlog.OpenCheckpoint(cp, tlog.RequireAll(k.edV, k.smV)); err != nil || info.Size != 0 {
		t.Fatalf("empty log checkpoint: %v %+v", err, info)
	}
	if _, err := l.Entry(ctx, 0); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("Entry(0) of an empty log: %v", err)
	}
	if _, err := l.AwaitIntegrated(ctx, 0); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("AwaitIntegrated(0) of an empty log: %v", err)
	}
	if _, err := l.Add(ctx, make([]byte, tlog.MaxEntrySize+1)); err == nil {
		t.Error("oversized entry accepted")
	}
	d := []byte("entry")
	i, err := l.Add(ctx, d)
	if err != nil || i != 0 {
		t.Fatalf("Add = %d, %v", i, err)
	}
	// Covered only after publication.
	if _, err := l.Receipt(ctx, 0, d); err != nil && !errors.Is(err, tlog.ErrNotPublished) {
		t.Errorf("Receipt before publication: %v", err)
	}
	if _, err := l.AwaitIntegrated(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Receipt(ctx, 0, []byte("other")); !errors.Is(err, tlog.ErrNotIncluded) {
		t.Errorf("Receipt for wrong data: %v", err)
	}
	if _, err := l.Receipt(ctx, 1, d); !errors.Is(err, tlog.ErrNotPublished) {
		t.Errorf("Receipt beyond the checkpoint: %v", err)
	}
	if _, err := l.Consistency(ctx, 0, 2); !errors.Is(err, tlog.ErrNotPublished) {
		t.Errorf("Consistency beyond the checkpoint: %v", err)
	}
	if p, err := l.Consistency(ctx, 0, 1); err != nil || len(p) != 0 {
		t.Errorf("Consistency(0, 1) = %v, %v", p, err)
	}
	// A cancelled Add returns at once.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Add(cctx, []byte("late")); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled context: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer tcancel()
	if _, err := l.AwaitIntegrated(tctx, 1); err == nil {
		// The cancelled entry may or may not have been appended: both are fine.
		t.Log("the cancelled entry was appended")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(ctx, d); !errors.Is(err, tlog.ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	if _, err := l.AddMany(ctx, [][]byte{d}); !errors.Is(err, tlog.ErrClosed) {
		t.Errorf("AddMany after Close: %v", err)
	}
	// The directory is free again.
	l2, err := tlog.Open(ctx, tlog.Config{Dir: dir, Origin: origin, Ed25519: k.ed, SM2: k.sm})
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()

	// Configuration errors.
	for name, cfg := range map[string]tlog.Config{
		"no dir":           {Origin: origin, Ed25519: k.ed, SM2: k.sm},
		"no SM2":           {Dir: t.TempDir(), Origin: origin, Ed25519: k.ed},
		"origin mismatch":  {Dir: t.TempDir(), Origin: "yibao.example/log/1", Ed25519: k.ed, SM2: k.sm},
		"signers disagree": {Dir: t.TempDir(), Ed25519: k.ed, SM2: newKeys(t, "other", "x").sm},
		"dir is not a dir": {Dir: filepath.Join(dir, "checkpoint"), Origin: origin, Ed25519: k.ed, SM2: k.sm},
	} {
		if l, err := tlog.Open(ctx, cfg); err == nil {
			l.Close()
			t.Errorf("%s: opened", name)
		}
	}
}

// TestCloseDrains closes the log while Adds are in flight: every Add either
// fails with ErrClosed or returns an index that the final checkpoint covers.
func TestCloseDrains(t *testing.T) {
	k := newKeys(t, origin, "close")
	ctx := t.Context()
	dir := t.TempDir()
	l, err := tlog.Open(ctx, tlog.Config{Dir: dir, Origin: origin, Ed25519: k.ed, SM2: k.sm})
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		i   uint64
		err error
	}
	out := make(chan res, 600)
	for i := range 600 {
		go func() {
			time.Sleep(time.Duration(i%60) * time.Millisecond)
			idx, err := l.Add(ctx, payload("close", i))
			out <- res{idx, err}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var maxIdx uint64
	added := 0
	for range 600 {
		r := <-out
		switch {
		case r.err == nil:
			added++
			maxIdx = max(maxIdx, r.i)
		case !errors.Is(r.err, tlog.ErrClosed):
			t.Errorf("Add during Close: %v", r.err)
		}
	}
	rep, err := tlog.VerifyTree(ctx, dir, k.verifiers())
	if err != nil {
		t.Fatal(err)
	}
	if added == 0 || rep.Size != uint64(added) || maxIdx >= rep.Size {
		t.Errorf("%d Adds succeeded (max index %d), final checkpoint size %d", added, maxIdx, rep.Size)
	}
	t.Logf("%d of 600 Adds before Close", added)
}

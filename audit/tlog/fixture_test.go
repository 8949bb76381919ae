package tlog_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"yibao/audit/tlog"
	"yibao/gmcrypto"
)

const origin = "yibao.example/log/370100"

// keySet is a log's two signers and their verifiers.
type keySet struct {
	ed, sm       note.Signer
	edV, smV     note.Verifier
	edKey, smKey string // verifier keys
}

// verifiers accepts either signature.
func (k keySet) verifiers() note.Verifiers { return note.VerifierList(k.edV, k.smV) }

func newKeys(t testing.TB, name, seed string) keySet {
	t.Helper()
	s := sha256.Sum256([]byte(seed))
	skey, vkey, err := tlog.Ed25519FromSeed(name, s[:])
	if err != nil {
		t.Fatal(err)
	}
	ed, err := tlog.NewEd25519Signer(skey)
	if err != nil {
		t.Fatal(err)
	}
	edV, err := tlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	k := gmcrypto.DeterministicKey([]byte(seed))
	sm, err := tlog.NewSM2Signer(name, k)
	if err != nil {
		t.Fatal(err)
	}
	smKey := tlog.SM2VerifierKey(name, k.Public())
	smV, err := tlog.NewVerifier(smKey)
	if err != nil {
		t.Fatal(err)
	}
	return keySet{ed: ed, sm: sm, edV: edV, smV: smV, edKey: vkey, smKey: smKey}
}

// payload is an audit-entry-like record of about 400 bytes.
func payload(log string, i int) []byte {
	ref := sha256.Sum256(fmt.Appendf(nil, "%s/%d", log, i))
	return fmt.Appendf(nil, `{"log":%q,"id":"e-%06d","kind":"settlement","person":"%x","amount":"%d.%02d","note":"%s"}`,
		log, i, ref, i*37%100000, i%100, strings.Repeat("-", 230))
}

// entryID extracts the record ID a payload carries (for recovery).
func entryID(data []byte) string {
	_, rest, _ := strings.Cut(string(data), `"id":"`)
	id, _, _ := strings.Cut(rest, `"`)
	return id
}

// fixture is a log of 2,000 entries (100 added with AddMany, then 1,900 by
// concurrent Adds), closed, plus what was observed while it was open, and
// a second log of 100 other entries under the same keys and origin.
type fixture struct {
	keys    keySet
	dir     string
	data    [][]byte // by index
	addMany []uint64 // AddMany's indices for data 0..99 of the payload sequence
	dupIdx  []string // problems with the index assignment
	size    uint64   // Size after the appends
	scanned [][]byte // Scan(0, 2000)
	entries map[uint64][]byte
	cp100   string
	cp2000  string
	cons    [][]byte // Consistency(100, 2000)
	// receipts of a sample of indices, against cp2000.
	receipts []*tlog.Receipt

	dirB   string // the other log
	cpB100 string
}

var sample = []uint64{0, 1, 99, 100, 255, 256, 257, 511, 767, 1023, 1024, 1500, 1791, 1792, 1998, 1999}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
	fixRoot string
)

func TestMain(m *testing.M) {
	// tessera and its fsck log through klog to stderr; keep test output
	// readable (go test -v shows the tests' own logs).
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	code := m.Run()
	if fixRoot != "" {
		os.RemoveAll(fixRoot)
	}
	os.Exit(code)
}

func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixture(newKeys(t, origin, "yibao test log")) })
	if fixErr != nil {
		t.Fatalf("fixture: %v", fixErr)
	}
	return fix
}

func buildFixture(keys keySet) (*fixture, error) {
	ctx := context.Background()
	root, err := os.MkdirTemp("", "tlog-fixture-")
	if err != nil {
		return nil, err
	}
	fixRoot = root
	f := &fixture{keys: keys, dir: filepath.Join(root, "a"), dirB: filepath.Join(root, "b"),
		data: make([][]byte, 2000), entries: map[uint64][]byte{}}
	l, err := tlog.Open(ctx, tlog.Config{Dir: f.dir, Origin: origin, Ed25519: keys.ed, SM2: keys.sm})
	if err != nil {
		return nil, err
	}
	defer l.Close()

	first := make([][]byte, 100)
	for i := range first {
		first[i] = payload("a", i)
	}
	if f.addMany, err = l.AddMany(ctx, first); err != nil {
		return nil, err
	}
	for i, idx := range f.addMany {
		if idx >= 2000 || f.data[idx] != nil {
			f.dupIdx = append(f.dupIdx, fmt.Sprintf("AddMany gave index %d twice or out of range", idx))
			continue
		}
		f.data[idx] = first[i]
	}
	cp, err := l.AwaitIntegrated(ctx, 99)
	if err != nil {
		return nil, err
	}
	f.cp100 = string(cp)

	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 1900)
	for i := 100; i < 2000; i++ {
		wg.Go(func() {
			d := payload("a", i)
			idx, err := l.Add(ctx, d)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if idx >= 2000 || f.data[idx] != nil {
				f.dupIdx = append(f.dupIdx, fmt.Sprintf("Add gave index %d twice or out of range", idx))
				return
			}
			f.data[idx] = d
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	if cp, err = l.AwaitIntegrated(ctx, 1999); err != nil {
		return nil, err
	}
	f.cp2000 = string(cp)
	if f.size, err = l.Size(ctx); err != nil {
		return nil, err
	}
	if err := l.Scan(ctx, 0, 2000, func(_ uint64, d []byte) error {
		f.scanned = append(f.scanned, d)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, i := range sample {
		if f.entries[i], err = l.Entry(ctx, i); err != nil {
			return nil, err
		}
		if f.data[i] == nil {
			return nil, fmt.Errorf("no data recorded for index %d", i)
		}
		r, err := l.Receipt(ctx, i, f.data[i])
		if err != nil {
			return nil, err
		}
		f.receipts = append(f.receipts, r)
	}
	if f.cons, err = l.Consistency(ctx, 100, 2000); err != nil {
		return nil, err
	}
	if err := l.Close(); err != nil {
		return nil, err
	}

	// The other log: same keys and origin, other entries.
	lb, err := tlog.Open(ctx, tlog.Config{Dir: f.dirB, Origin: origin, Ed25519: keys.ed, SM2: keys.sm})
	if err != nil {
		return nil, err
	}
	defer lb.Close()
	other := make([][]byte, 100)
	for i := range other {
		other[i] = payload("b", i)
	}
	if _, err := lb.AddMany(ctx, other); err != nil {
		return nil, err
	}
	if cp, err = lb.AwaitIntegrated(ctx, 99); err != nil {
		return nil, err
	}
	f.cpB100 = string(cp)
	return f, lb.Close()
}

// copyDir copies a log directory so that a test can tamper with it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "log")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// splitNote splits a signed note into its text and signature lines.
func splitNote(t *testing.T, n string) (string, []string) {
	t.Helper()
	i := strings.LastIndex(n, "\n\n")
	if i < 0 {
		t.Fatalf("not a note: %q", n)
	}
	return n[:i+1], strings.Split(strings.TrimSuffix(n[i+2:], "\n"), "\n")
}

func joinNote(text string, sigs []string) string {
	if len(sigs) == 0 {
		return text + "\n"
	}
	return text + "\n" + strings.Join(sigs, "\n") + "\n"
}

// sigHash is the key ID of a signature line.
func sigHash(t *testing.T, line string) uint32 {
	t.Helper()
	f := strings.Fields(line)
	b, err := base64.StdEncoding.DecodeString(f[len(f)-1])
	if err != nil || len(b) < 5 {
		t.Fatalf("bad signature line %q", line)
	}
	return binary.BigEndian.Uint32(b)
}

// withoutSig drops the signature lines by the key with that ID.
func withoutSig(t *testing.T, n string, hash uint32) string {
	t.Helper()
	text, sigs := splitNote(t, n)
	var kept []string
	for _, s := range sigs {
		if sigHash(t, s) != hash {
			kept = append(kept, s)
		}
	}
	if len(kept) == len(sigs) {
		t.Fatalf("no signature %08x in %q", hash, n)
	}
	return joinNote(text, kept)
}

// resign signs the text of n afresh with signers.
func resign(t *testing.T, n string, signers ...note.Signer) string {
	t.Helper()
	text, _ := splitNote(t, n)
	b, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/audit"
	"yibao/audit/tlog"
	"yibao/audit/witness"
	"yibao/money"
	"yibao/settlement"
)

type env struct {
	t       *testing.T
	a       *app.App
	cashier context.Context
	admin   context.Context
	drug    string
	psn     string
}

func newEnv(t *testing.T) *env {
	a, d := apptest.Open(t, nil)
	e := &env{t: t, a: a, admin: yibao.WithPrincipal(context.Background(), yibao.System("test")),
		cashier: yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: "H37010000001"})}
	today := yibao.DateOf(time.Now())
	for _, it := range d.Catalog {
		if it.Kind == yibao.ItemDrug && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			e.drug = it.Code
			break
		}
	}
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == "370100" {
			e.psn = c.PsnNo
		}
	}
	return e
}

func (e *env) settle() *settlement.Settlement {
	e.t.Helper()
	v, err := e.a.Settle.OpenVisit(e.cashier, settlement.VisitRequest{PsnNo: e.psn, FixmedinsCode: "H37010000001", Type: "general_outpatient"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.a.Settle.AddFeeLines(e.cashier, v.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: e.drug, UnitPrice: 12345, Quantity: money.MustRatio(2, 1)}}); err != nil {
		e.t.Fatal(err)
	}
	st, err := e.a.Settle.Settle(e.cashier, v.MdtrtID, settlement.SettleRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) drain() {
	e.t.Helper()
	for {
		n, err := e.a.Sequencer.Step(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// TestReceipt: a settlement's entry is written with it, sequenced into
// the log, and its receipt verifies offline with the two public keys —
// and no longer verifies when anything in it changes. The entry names
// the person only by a salted reference.
func TestReceipt(t *testing.T) {
	e := newEnv(t)
	st := e.settle()
	store := &audit.Store{DB: e.a.DB, Log: e.a.TLog}
	id := "settlement:" + st.SetlID + ":completed"
	if _, err := store.ReceiptFor(e.admin, id); !yibao.IsCode(err, yibao.CodeUnavailable) {
		t.Fatalf("receipt before the log has the entry: %v", err)
	}
	e.drain()
	r, err := store.ReceiptFor(e.admin, id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Data), e.psn) || !strings.Contains(string(r.Data), `"person":"psn:`) {
		t.Fatalf("the entry shows the person number: %s", r.Data)
	}
	keys, _ := e.a.AuditKeys()
	vs, err := audit.Verifiers(keys.VerifierKey...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyReceipt(r, vs); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	b, _ := json.Marshal(r)
	for _, c := range []struct {
		name   string
		change func(*tlog.Receipt)
	}{
		{"amount changed", func(r *tlog.Receipt) {
			r.Data = []byte(strings.Replace(string(r.Data), st.MedfeeSumamt.String(), "1.00", 1))
		}},
		{"another index", func(r *tlog.Receipt) { r.Index++ }},
		{"a proof hash changed", func(r *tlog.Receipt) { r.Proof[0][0] ^= 1 }},
		{"checkpoint edited", func(r *tlog.Receipt) { r.Checkpoint = strings.Replace(r.Checkpoint, "\n", "\n ", 1) }},
	} {
		var bad tlog.Receipt
		json.Unmarshal(b, &bad)
		if len(bad.Proof) == 0 && c.name == "a proof hash changed" {
			continue
		}
		c.change(&bad)
		if err := tlog.VerifyReceipt(&bad, vs); err == nil {
			t.Errorf("%s: the receipt still verifies", c.name)
		}
	}
	// Only the SM2 key, or only the Ed25519 key, is not enough: both must sign.
	other, _ := audit.DeriveKeys([]byte("another platform's master secret."), e.a.Config.LogOrigin)
	mixed, _ := audit.Verifiers(keys.VerifierKey[0], other.VerifierKey[1])
	if err := tlog.VerifyReceipt(r, mixed); err == nil {
		t.Error("a receipt verified against another platform's SM2 key")
	}
}

// TestExactlyOnce: the same entry recorded twice is one row; entries
// appended before a crash took their write-back are found again and not
// appended a second time.
func TestExactlyOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var seeded int
	e.a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM audit_entries WHERE id LIKE 'settlement:%:completed'`).Scan(&seeded)
	for range 5 {
		e.settle()
	}
	e.drain()
	size, _ := e.a.TLog.Size(ctx)
	// A crash: the log got entries whose indices never reached the table.
	e.settle()
	e.settle()
	var bodies [][]byte
	rows, _ := e.a.DB.Query(ctx, `SELECT body FROM audit_entries WHERE log_index IS NULL ORDER BY seq`)
	for rows.Next() {
		var b string
		rows.Scan(&b)
		bodies = append(bodies, []byte(b))
	}
	rows.Close()
	if len(bodies) == 0 {
		t.Fatal("no pending entries")
	}
	if _, err := e.a.TLog.AddMany(ctx, bodies); err != nil {
		t.Fatal(err)
	}
	// A fresh sequencer, as after the restart.
	q := audit.NewSequencer(e.a.DB, e.a.TLog, e.a.Log)
	if n, err := q.Step(ctx); err != nil || n != 0 {
		t.Fatalf("after the crash the sequencer appended %d again (%v)", n, err)
	}
	after, _ := e.a.TLog.Size(ctx)
	if after != size+uint64(len(bodies)) {
		t.Fatalf("log size %d, want %d", after, size+uint64(len(bodies)))
	}
	rep, err := audit.Check(ctx, e.a.DB, e.a.TLog)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Pending != 0 || uint64(rep.Sequenced) != after {
		t.Fatalf("check after recovery: %+v", rep)
	}
	// Recording an entry id twice keeps one row.
	var n int
	e.a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM audit_entries WHERE id LIKE 'settlement:%:completed'`).Scan(&n)
	if n != seeded+7 {
		t.Fatalf("%d completed-settlement entries for %d settlements", n, seeded+7)
	}
	// An entry edited in the database after it was logged is found.
	if _, err := e.a.DB.Exec(ctx, `UPDATE audit_entries SET body = replace(body, '"status":"completed"', '"status":"voided"')
		WHERE id = (SELECT MIN(id) FROM audit_entries WHERE id LIKE 'settlement:%:completed')`); err != nil {
		t.Fatal(err)
	}
	if rep, _ = audit.Check(ctx, e.a.DB, e.a.TLog); len(rep.Mismatches) != 1 {
		t.Fatalf("an edited stored entry: %+v", rep)
	}
}

// TestWitness follows the platform's log over HTTP: it accepts growth,
// and refuses a rollback and a split view.
func TestWitness(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	srv := httptest.NewServer(e.a.Handler())
	defer srv.Close()
	keys, _ := e.a.AuditKeys()
	vs, _ := audit.Verifiers(keys.VerifierKey...)
	skey, _, _ := tlog.GenerateEd25519("witness.test")
	signer, _ := tlog.NewEd25519Signer(skey)
	w := &witness.Witness{LogURL: srv.URL + "/log/", Verifiers: vs, Signer: signer, StatePath: filepath.Join(t.TempDir(), "w.json")}
	e.settle()
	e.drain()
	wait := func() {
		size, _ := e.a.TLog.Size(ctx)
		if _, err := e.a.TLog.AwaitIntegrated(ctx, size-1); err != nil {
			t.Fatal(err)
		}
	}
	wait()
	first, err := w.Update(ctx)
	if err != nil || !first.First || !strings.Contains(first.Cosigned, "— witness.test ") {
		t.Fatalf("first update: %+v %v", first, err)
	}
	for range 3 {
		e.settle()
	}
	e.drain()
	wait()
	grown, err := w.Update(ctx)
	if err != nil || grown.New <= grown.Old {
		t.Fatalf("growth: %+v %v", grown, err)
	}
	// A log that shows the witness a different history (another log
	// signed with the same keys: what a platform rewriting its past would
	// publish) of the same or a smaller size is refused.
	fork := forkLog(t, keys, e.a.Config.LogOrigin, int(grown.New))
	w2 := *w
	w2.LogURL = fork.URL + "/"
	if _, err := w2.Update(ctx); !errors.Is(err, tlog.ErrSplitView) {
		t.Fatalf("split view: %v", err)
	}
	small := forkLog(t, keys, e.a.Config.LogOrigin, int(grown.New)-2)
	w2.LogURL = small.URL + "/"
	if _, err := w2.Update(ctx); !errors.Is(err, tlog.ErrRollback) {
		t.Fatalf("rollback: %v", err)
	}
}

// forkLog is another log under the same origin and keys with n entries.
func forkLog(t *testing.T, keys *audit.Keys, origin string, n int) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	l, err := tlog.Open(ctx, tlog.Config{Dir: filepath.Join(t.TempDir(), "fork"), Origin: origin, Ed25519: keys.Ed25519, SM2: keys.SM2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var data [][]byte
	for i := range n {
		data = append(data, []byte(`{"id":"fork-`+string(rune('a'+i%26))+`","i":`+string(rune('0'+i%10))+`}`))
	}
	idx, err := l.AddMany(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AwaitIntegrated(ctx, idx[len(idx)-1]); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	t.Cleanup(srv.Close)
	return srv
}

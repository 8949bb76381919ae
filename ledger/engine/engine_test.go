package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

var ctx = context.Background()

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T) (*engine.Engine, *sqlstore.DB, *clock) {
	t.Helper()
	db := sqltest.Open(t)
	clk := &clock{t: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	e, err := engine.Open(ctx, db, engine.Options{Clock: clk.Now, ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	fund := ledger.FundPool("370100", "310")
	if err := e.CreateAccounts(ctx, fund, ledger.FundIncome(fund.ID), ledger.PersonalAccount("p1"),
		ledger.HospitalReceivable("H1"), ledger.PatientCash("H1")); err != nil {
		t.Fatal(err)
	}
	return e, db, clk
}

func check(t *testing.T, db *sqlstore.DB) *engine.Report {
	t.Helper()
	rep, err := engine.Check(ctx, db, time.Now().UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("invariants broken: %v", rep.Violations)
	}
	return rep
}

const (
	fund   = "fund:370100:310"
	income = "income:fund:370100:310"
	acct   = "acct:p1"
	recv   = "recv:H1"
	cash   = "cash:H1"
)

func tr(id, dr, cr string, yuan string) ledger.Transfer {
	return ledger.Transfer{ID: id, DebitAccountID: dr, CreditAccountID: cr, Amount: money.MustParseYuan(yuan), Code: "test"}
}

func TestTransfersBalancesAndStatements(t *testing.T) {
	e, db, _ := open(t)
	if _, err := e.Transfer(ctx, tr("c1", income, fund, "1000.00")); err != nil {
		t.Fatal(err)
	}
	setl := ledger.Transfer{ID: "s1/hifp", DebitAccountID: fund, CreditAccountID: recv, Amount: 70000, Code: "settlement", UserData: "setl-1", Leg: "hifp_pay"}
	cashLeg := ledger.Transfer{ID: "s1/cash", DebitAccountID: cash, CreditAccountID: recv, Amount: 30000, Code: "settlement", UserData: "setl-1", Leg: "psn_cash_pay"}
	res, err := e.Submit(ctx, engine.Unit{Transfers: []ledger.Transfer{setl, cashLeg}})
	if err != nil || res.Replayed {
		t.Fatalf("settle: %+v %v", res, err)
	}
	// The same unit again: the original result, nothing applied twice.
	res2, err := e.Submit(ctx, engine.Unit{Transfers: []ledger.Transfer{setl, cashLeg}})
	if err != nil || !res2.Replayed || res2.Transfers[0].Seq != res.Transfers[0].Seq {
		t.Fatalf("replay: %+v %v", res2, err)
	}
	// Same id, other content: conflict.
	setl.Amount++
	_, err = e.Submit(ctx, engine.Unit{Transfers: []ledger.Transfer{setl}})
	if yibao.ErrorCode(err) != yibao.CodeConflict {
		t.Fatalf("conflicting reuse: %v", err)
	}
	b, err := e.Balance(ctx, fund)
	if err != nil || b.Posted != money.MustParseYuan("300.00") || b.Available != b.Posted {
		t.Fatalf("fund balance %+v %v", b, err)
	}
	legs, err := e.TransfersByUserData(ctx, "setl-1")
	if err != nil || len(legs) != 2 || legs[0].Leg != "hifp_pay" || legs[1].Leg != "psn_cash_pay" {
		t.Fatalf("legs %+v %v", legs, err)
	}
	lines, next, err := e.Statement(ctx, fund, 0, 1)
	if err != nil || len(lines) != 1 || next == 0 || lines[0].Balance != 100000 || lines[0].Amount != 100000 {
		t.Fatalf("statement page 1: %+v %d %v", lines, next, err)
	}
	lines, next, err = e.Statement(ctx, fund, next, 10)
	if err != nil || len(lines) != 1 || next != 0 || lines[0].Balance != 30000 || lines[0].Amount != -70000 || lines[0].Side != "debit" {
		t.Fatalf("statement page 2: %+v %d %v", lines, next, err)
	}
	rep := check(t, db)
	if rep.Transfers != 3 {
		t.Fatalf("report %+v", rep)
	}
}

func TestBadInputIsRefusedWithStableCodes(t *testing.T) {
	e, db, _ := open(t)
	e.Transfer(ctx, tr("c1", income, fund, "100.00"))
	cases := []struct {
		name string
		t    ledger.Transfer
		code yibao.Code
		why  ledger.Reason
	}{
		{"zero", tr("x1", fund, recv, "0.00"), yibao.CodeInvalid, ledger.ReasonAmountNotPositive},
		{"negative", tr("x2", fund, recv, "-1.00"), yibao.CodeInvalid, ledger.ReasonAmountNotPositive},
		{"unknown account", tr("x3", fund, "recv:nobody", "1.00"), yibao.CodeNotFound, ledger.ReasonAccountNotFound},
		{"same account", tr("x4", fund, fund, "1.00"), yibao.CodeInvalid, ledger.ReasonSameAccount},
		{"overdraft", tr("x5", fund, recv, "100.01"), yibao.CodeInsufficientFunds, ledger.ReasonExceedsCredits},
		{"currency mismatch", ledger.Transfer{ID: "x6", DebitAccountID: fund, CreditAccountID: recv, Amount: 1, Ledger: "USD"}, yibao.CodeInvalid, ledger.ReasonLedgerMismatch},
		{"post of a missing pending", ledger.Transfer{ID: "x7", PendingID: "nope", Flags: ledger.PostPending}, yibao.CodeNotFound, ledger.ReasonPendingNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Transfer(ctx, c.t)
			if yibao.ErrorCode(err) != c.code || ledger.ReasonOf(err) != c.why {
				t.Fatalf("got %v (%s), want %s %s", err, yibao.ErrorCode(err), c.code, c.why)
			}
		})
	}
	if rep := check(t, db); rep.Transfers != 1 {
		t.Fatalf("refused transfers were stored: %+v", rep)
	}
}

func TestUnitsAreAllOrNothing(t *testing.T) {
	e, db, _ := open(t)
	e.Transfer(ctx, tr("c1", income, fund, "100.00"))
	e.Transfer(ctx, tr("c2", income, acct, "10.00"))
	// The second leg overdraws the personal account: neither leg lands.
	_, err := e.Submit(ctx, engine.Unit{Transfers: []ledger.Transfer{tr("u1a", fund, recv, "50.00"), tr("u1b", acct, recv, "20.00")}})
	if ledger.ReasonOf(err) != ledger.ReasonExceedsCredits {
		t.Fatalf("got %v", err)
	}
	// The unit's statements fail: transfers and statements both roll back.
	boom := errors.New("settlement row rejected")
	_, err = e.Submit(ctx, engine.Unit{Transfers: []ledger.Transfer{tr("u2", fund, recv, "10.00")},
		Statements: func(ctx context.Context, tx *sqlstore.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO regions (admdvs, name, created_at) VALUES ('370900', 'x', 1)`); err != nil {
				return err
			}
			return boom
		}})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	var n int
	db.QueryRow(ctx, `SELECT COUNT(*) FROM regions`).Scan(&n)
	if n != 0 {
		t.Fatal("a failed unit's statement was committed")
	}
	// A good unit commits its statements with its transfers.
	_, err = e.Submit(ctx, engine.Unit{Transfers: []ledger.Transfer{tr("u3", fund, recv, "10.00")},
		Statements: func(ctx context.Context, tx *sqlstore.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO regions (admdvs, name, created_at) VALUES ('370900', 'x', 1)`)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	db.QueryRow(ctx, `SELECT COUNT(*) FROM regions`).Scan(&n)
	if n != 1 {
		t.Fatal("a good unit's statement is missing")
	}
	b, _ := e.Balance(ctx, fund)
	if b.Posted != money.MustParseYuan("90.00") {
		t.Fatalf("fund = %s", b.Posted)
	}
	check(t, db)
}

// TestConcurrentUnitsInOneBatch submits many units at once — good ones,
// overdrafts, failing statements — so they share batches, and checks each
// unit's fate is its own.
func TestConcurrentUnitsInOneBatch(t *testing.T) {
	e, db, _ := open(t)
	e.Transfer(ctx, tr("c1", income, fund, "500.00"))
	var ok, refused, stmtFailed atomic.Int64
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := engine.Unit{Transfers: []ledger.Transfer{tr(fmt.Sprint("t", i), fund, recv, "3.00")}}
			if i%10 == 0 {
				u.Statements = func(ctx context.Context, tx *sqlstore.Tx) error { return errors.New("no") }
			}
			_, err := e.Submit(ctx, u)
			switch {
			case err == nil:
				ok.Add(1)
			case ledger.ReasonOf(err) == ledger.ReasonExceedsCredits:
				refused.Add(1)
			case err.Error() == "no":
				stmtFailed.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	wg.Wait()
	// 500 yuan pays exactly 166 transfers of 3 yuan; of the 30 units whose
	// statements fail, those that reach their statements fail alone.
	if ok.Load() != 166 || stmtFailed.Load() == 0 || ok.Load()+refused.Load()+stmtFailed.Load() != 300 {
		t.Fatalf("ok %d refused %d statement failures %d", ok.Load(), refused.Load(), stmtFailed.Load())
	}
	b, _ := e.Balance(ctx, fund)
	if b.Posted != money.MustParseYuan("2.00") {
		t.Fatalf("fund = %s", b.Posted)
	}
	check(t, db)
	if s := e.Stats(); s.Batches >= 300 {
		t.Logf("no batching happened: %+v", s)
	}
}

func TestTwoPhaseAndExpiry(t *testing.T) {
	e, db, clk := open(t)
	e.Transfer(ctx, tr("c1", income, fund, "100.00"))
	hold := tr("hold1", fund, recv, "60.00")
	hold.Flags, hold.Timeout = ledger.Pending, 30
	if _, err := e.Transfer(ctx, hold); err != nil {
		t.Fatal(err)
	}
	b, _ := e.Balance(ctx, fund)
	if b.Posted != 10000 || b.Available != 4000 {
		t.Fatalf("after hold: %+v", b)
	}
	if _, err := e.Transfer(ctx, tr("over", fund, recv, "40.01")); ledger.ReasonOf(err) != ledger.ReasonExceedsCredits {
		t.Fatalf("holds must count against available: %v", err)
	}
	post := ledger.Transfer{ID: "post1", PendingID: "hold1", Amount: 5000, Flags: ledger.PostPending}
	if _, err := e.Transfer(ctx, post); err != nil {
		t.Fatal(err)
	}
	b, _ = e.Balance(ctx, fund)
	if b.Posted != 5000 || b.Available != 5000 {
		t.Fatalf("after partial post: %+v", b)
	}
	hold2 := tr("hold2", fund, recv, "20.00")
	hold2.Flags, hold2.Timeout = ledger.Pending, 30
	e.Transfer(ctx, hold2)
	clk.Advance(29 * time.Second)
	if n, err := e.ExpirePending(ctx); n != 0 || err != nil {
		t.Fatalf("expired too early: %d %v", n, err)
	}
	clk.Advance(2 * time.Second)
	if _, err := e.Transfer(ctx, ledger.Transfer{ID: "late", PendingID: "hold2", Flags: ledger.PostPending}); ledger.ReasonOf(err) != ledger.ReasonPendingExpired {
		t.Fatalf("post after timeout: %v", err)
	}
	if n, err := e.ExpirePending(ctx); n != 1 || err != nil {
		t.Fatalf("expire: %d %v", n, err)
	}
	if n, _ := e.ExpirePending(ctx); n != 0 {
		t.Fatal("expired twice")
	}
	got, _ := e.GetTransfer(ctx, "hold2")
	if got.Status != ledger.StatusExpired {
		t.Fatalf("hold2 status %s", got.Status)
	}
	b, _ = e.Balance(ctx, fund)
	if b.Available != 5000 {
		t.Fatalf("expiry did not release: %+v", b)
	}
	check(t, db)
}

func TestCheckFindsTampering(t *testing.T) {
	e, db, _ := open(t)
	e.Transfer(ctx, tr("c1", income, fund, "100.00"))
	e.Close()
	db.Exec(ctx, `UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = ?`, fund)
	rep, err := engine.Check(ctx, db, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Violations) < 2 {
		t.Fatalf("tampering not found: %+v", rep)
	}
}

func TestRestartKeepsSequenceAndCache(t *testing.T) {
	db := sqltest.Open(t)
	e, err := engine.Open(ctx, db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	e.CreateAccounts(ctx, ledger.Account{ID: "a", Ledger: ledger.CNY, Kind: ledger.KindSystem}, ledger.Account{ID: "b", Ledger: ledger.CNY, Kind: ledger.KindSystem})
	t1, _ := e.Transfer(ctx, ledger.Transfer{ID: "1", DebitAccountID: "a", CreditAccountID: "b", Amount: 1})
	e.Close()
	if db.Dialect == sqlstore.Postgres {
		// The advisory lock is released with the session.
	}
	e2, err := engine.Open(ctx, db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	t2, err := e2.Transfer(ctx, ledger.Transfer{ID: "2", DebitAccountID: "a", CreditAccountID: "b", Amount: 1})
	if err != nil || t2.Seq != t1.Seq+1 || t2.CreditBalance != 2 {
		t.Fatalf("after restart: %+v %v", t2, err)
	}
}

func TestOneWriterPerDatabase(t *testing.T) {
	db := sqltest.Open(t)
	if db.Dialect != sqlstore.Postgres {
		t.Skip("SQLite has one writer by construction")
	}
	e, err := engine.Open(ctx, db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := engine.Open(ctx, db, engine.Options{ExpiryInterval: -1}); yibao.ErrorCode(err) != yibao.CodeUnavailable {
		t.Fatalf("second writer: %v", err)
	}
}

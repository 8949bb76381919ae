package engine_test

import (
	"testing"

	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/sqlstore/sqltest"
)

// TestPostPendingWithColdCache posts and voids pending transfers made
// before a restart: a post or void names only its pending transfer, so
// the writer must load the pending's accounts too.
func TestPostPendingWithColdCache(t *testing.T) {
	db := sqltest.Open(t)
	e, err := engine.Open(ctx, db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	fund := ledger.FundPool("370100", "310")
	if err := e.CreateAccounts(ctx, fund, ledger.FundIncome(fund.ID), ledger.HospitalReceivable("H1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Transfer(ctx, tr("c1", income, fund.ID, "100.00")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"hold1", "hold2"} {
		h := tr(id, fund.ID, recv, "30.00")
		h.Flags, h.Timeout = ledger.Pending, 3600
		if _, err := e.Transfer(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	e2, err := engine.Open(ctx, db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if _, err := e2.Transfer(ctx, ledger.Transfer{ID: "post1", PendingID: "hold1", Flags: ledger.PostPending}); err != nil {
		t.Fatalf("post after restart: %v", err)
	}
	if _, err := e2.Transfer(ctx, ledger.Transfer{ID: "void2", PendingID: "hold2", Flags: ledger.VoidPending}); err != nil {
		t.Fatalf("void after restart: %v", err)
	}
	b, _ := e2.Balance(ctx, fund.ID)
	if b.Posted != 7000 || b.Available != 7000 {
		t.Fatalf("fund after post and void: %+v", b)
	}
	check(t, db)
}

// TestSequenceAfterAmbiguousCommit: a batch whose COMMIT failed may still
// have committed (the connection died after the server wrote it; after a
// failover the promoted standby has it). The writer must not reuse its
// sequence numbers: it reads the sequence again before the next batch.
func TestSequenceAfterAmbiguousCommit(t *testing.T) {
	db := sqltest.Open(t)
	e, err := engine.Open(ctx, db, engine.Options{ExpiryInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.CreateAccounts(ctx, ledger.Account{ID: "a", Ledger: ledger.CNY, Kind: ledger.KindSystem}, ledger.Account{ID: "b", Ledger: ledger.CNY, Kind: ledger.KindSystem})
	t1, err := e.Transfer(ctx, ledger.Transfer{ID: "1", DebitAccountID: "a", CreditAccountID: "b", Amount: 1, Code: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// What the writer did not hear about: a row at its next sequence.
	if _, err := db.Exec(ctx, `INSERT INTO ledger_transfers (seq, id, debit_account_id, credit_account_id, amount, pending_id, timeout, ledger,
		code, flags, user_data, leg, created_at, debit_balance, credit_balance, pending_status, expires_at)
		VALUES (?, 'landed', 'a', 'b', 0, NULL, 0, 'CNY', 'test', 0, '', '', 0, 0, 0, NULL, 0)`, t1.Seq+1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Transfer(ctx, ledger.Transfer{ID: "2", DebitAccountID: "a", CreditAccountID: "b", Amount: 1, Code: "test"}); err == nil {
		t.Fatal("the batch reusing a stored sequence number committed")
	}
	t2, err := e.Transfer(ctx, ledger.Transfer{ID: "2", DebitAccountID: "a", CreditAccountID: "b", Amount: 1, Code: "test"})
	if err != nil {
		t.Fatalf("the writer did not recover its sequence: %v", err)
	}
	if t2.Seq != t1.Seq+2 || t2.CreditBalance != 2 {
		t.Fatalf("after the failed batch: %+v", t2)
	}
}

package chaos

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"yibao/sqlstore"
)

// TestCheckRegionsFindsEveryKind builds a hub's and two nodes' rows by
// hand, one transaction per case, and checks that CheckRegions passes the
// good ones and names every half-done and disagreeing one: the harness of
// `yibao chaos xr` must bite.
func TestCheckRegionsFindsEveryKind(t *testing.T) {
	ctx := context.Background()
	open := func(name string) *sqlstore.DB {
		db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		// Settlements without their visits: only the states matter here.
		if _, err := db.Write().ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
			t.Fatal(err)
		}
		return db
	}
	hubDB, sd, js := open("hub"), open("37"), open("32")
	exec := func(db *sqlstore.DB, q string, args ...any) {
		t.Helper()
		if _, err := db.Write().ExecContext(ctx, db.Rebind(q), args...); err != nil {
			t.Fatal(err)
		}
	}
	hubTxn := func(id, insured, state string) {
		exec(hubDB, `INSERT INTO hub_txns (txid, insured_node, treating_node, insu_admdvs, treating_admdvs, psn_no, fixmedins_code, medfee_sumamt,
			fund_pay, acct_pay, state, deadline, created_at) VALUES (?, ?, '32', '370100', '320100', 'P1', 'H1', 100, 80, 0, ?, 0, 0)`, id, insured, state)
	}
	treating := func(id, state, status string) {
		exec(js, `INSERT INTO xr_treating (setl_id, psn_no, insu_admdvs, treating_admdvs, fixmedins_code, medfee_sumamt, fund_pay, acct_pay, state,
			created_at, updated_at) VALUES (?, 'P1', '370100', '320100', 'H1', 100, 80, 0, ?, 0, 0)`, id, state)
		exec(js, `INSERT INTO settlements (setl_id, mdtrt_id, psn_no, fixmedins_code, insutype, insu_admdvs, policy_version, kind, segment, pay_mode,
			status, acc_year, medfee_sumamt, fund_pay_sumamt, acct_pay, psn_cash_pay, input, result, legs, created_by, created_at)
			VALUES (?, 'MD'||?, 'P1', 'H1', '310', '370100', 'v1', 'outpatient', 1, 'cash', ?, 2026, 100, 80, 0, 20, '{}', '{}', '[]', 't', 0)`, id, id, status)
	}
	insured := func(id, state string) {
		exec(sd, `INSERT INTO xr_insured (txid, psn_no, insutype, insu_admdvs, treating_admdvs, fixmedins_code, medfee_sumamt, fund_pay, acct_pay,
			acc_change, legs, state, created_at, updated_at) VALUES (?, 'P1', '310', '370100', '320100', 'H1', 100, 80, 0, '{}', '[]', ?, 0, 0)`, id, state)
	}

	// Good: committed on every side; aborted with the insured node never
	// asked; a presumed abort; an insured tombstone the hub never logged.
	hubTxn("ok-committed", "37", "committed")
	treating("ok-committed", "committed", "completed")
	insured("ok-committed", "committed")
	hubTxn("ok-aborted", "37", "aborted")
	treating("ok-aborted", "aborted", "voided")
	hubTxn("ok-presumed", "", "aborted")
	treating("ok-presumed", "aborted", "voided")
	insured("ok-tombstone", "aborted")
	// Half-done: still being decided at the hub; prepared at the insured
	// node after a commit; prepared (settlement pending) at the treating node.
	hubTxn("half-hub", "37", "preparing")
	treating("half-hub", "prepared", "pending")
	insured("half-hub", "prepared")
	hubTxn("half-insured", "37", "committed")
	treating("half-insured", "committed", "completed")
	insured("half-insured", "prepared")
	hubTxn("half-treating", "37", "committed")
	treating("half-treating", "prepared", "pending")
	insured("half-treating", "committed")
	// Disagreements: committed at the hub, aborted at the insured node;
	// aborted at the hub, completed at the treating node; committed at a
	// node, unknown to the hub; the settlement voided under a committed row.
	hubTxn("dis-insured", "37", "committed")
	treating("dis-insured", "committed", "completed")
	insured("dis-insured", "aborted")
	hubTxn("dis-treating", "37", "aborted")
	treating("dis-treating", "committed", "completed")
	insured("dis-unknown", "committed")
	hubTxn("dis-settlement", "37", "committed")
	treating("dis-settlement", "committed", "voided")
	insured("dis-settlement", "committed")

	x, err := CheckRegions(ctx, hubDB, map[string]*sqlstore.DB{"37": sd, "32": js})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := slices.Sorted(maps.Keys(x.HalfDone)), []string{"half-hub", "half-insured", "half-treating"}; !slices.Equal(got, want) {
		t.Errorf("half-done %v, want %v (%v)", got, want, x.HalfDone)
	}
	if got, want := slices.Sorted(maps.Keys(x.Disagree)), []string{"dis-insured", "dis-settlement", "dis-treating", "dis-unknown"}; !slices.Equal(got, want) {
		t.Errorf("disagreements %v, want %v (%v)", got, want, x.Disagree)
	}
	if x.PresumedAborts != 1 || x.HubTxns["committed"] != 5 || x.HubTxns["aborted"] != 3 || x.HubTxns["preparing"] != 1 {
		t.Errorf("hub transactions %v, presumed aborts %d", x.HubTxns, x.PresumedAborts)
	}
	if s := x.States["ok-committed"]; s != (XRStates{Hub: "committed", Treating: "committed", Insured: "committed", Settlement: "completed"}) {
		t.Errorf("states of ok-committed: %+v", s)
	}
	if len(x.LedgerViolations) != 0 {
		t.Errorf("empty ledgers: %v", x.LedgerViolations)
	}
}

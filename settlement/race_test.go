package settlement_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

// Races on one personal account and on pending holds (reliability matrix
// rows R11 and R12): the account never goes below zero, pending holds
// counted, and ends where a replay of the successful operations says; a
// pending settlement resolves once, however completion, voiding and the
// ledger's expiry race for it.

// balances is every account's posted and pending balance.
func (w *world) balances() map[string][2]money.Fen {
	w.t.Helper()
	rows, err := w.db.Query(context.Background(), `SELECT id, credits_posted - debits_posted, credits_pending - debits_pending FROM ledger_accounts`)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][2]money.Fen{}
	for rows.Next() {
		var id string
		var posted, pending int64
		if err := rows.Scan(&id, &posted, &pending); err != nil {
			w.t.Fatal(err)
		}
		out[id] = [2]money.Fen{money.Fen(posted), money.Fen(pending)}
	}
	return out
}

// debited is what a settlement's legs take from account id.
func debited(st *settlement.Settlement, id string) money.Fen {
	var sum money.Fen
	for _, l := range st.Legs {
		if l.Debit == id {
			sum += l.Amount
		}
	}
	return sum
}

// replayAccount walks every transfer touching account id in commit order
// and returns how often, and by how much at worst, its available balance
// (posted credits − posted debits − pending debits) went below zero.
func (w *world) replayAccount(id string) (steps, negative int, worst money.Fen) {
	w.t.Helper()
	ctx := context.Background()
	rows, err := w.db.Query(ctx, `SELECT t.debit_account_id, t.credit_account_id, t.amount, t.flags, COALESCE(p.amount, 0), COALESCE(p.debit_account_id, '')
		FROM ledger_transfers t LEFT JOIN ledger_transfers p ON p.id = t.pending_id
		WHERE t.debit_account_id = ? OR t.credit_account_id = ? OR p.debit_account_id = ? OR p.credit_account_id = ? ORDER BY t.seq`, id, id, id, id)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var credits, debits, pending money.Fen
	for rows.Next() {
		var dr, cr, pdr string
		var amt, pamt int64
		var flags ledger.TransferFlags
		if err := rows.Scan(&dr, &cr, &amt, &flags, &pamt, &pdr); err != nil {
			w.t.Fatal(err)
		}
		switch {
		case flags&ledger.Pending != 0:
			if dr == id {
				pending += money.Fen(amt)
			}
		case flags&(ledger.PostPending|ledger.VoidPending) != 0:
			if pdr != id {
				continue // the account was the pending transfer's credit side
			}
			pending -= money.Fen(pamt) // the whole hold is released …
			if flags&ledger.PostPending != 0 {
				debits += money.Fen(amt) // … and what was posted leaves
			}
		case dr == id:
			debits += money.Fen(amt)
		case cr == id:
			credits += money.Fen(amt)
		}
		steps++
		if avail := credits - debits - pending; avail < 0 {
			negative++
			worst = min(worst, avail)
		}
	}
	return steps, negative, worst
}

// TestPersonalAccountRace (R11): one employee's personal account is drawn
// on at once by settlements at two hospitals and a pharmacy (through two
// service instances, as two nodes), by a family member's pharmacy bills
// (家庭共济), by pay-later settlements completed or voided, while three
// earlier settlements are reversed (the account refunded). Together they
// ask for far more than the account holds. It never goes below zero —
// sampled while running, and replayed transfer by transfer in commit
// order, holds counted — and it ends at the balance a replay of the
// successful operations gives.
func TestPersonalAccountRace(t *testing.T) {
	w := newWorld(t)
	acct := "acct:" + Active
	other := settlement.New(w.db, w.reg, w.led, nil)
	other.SetClock(func() time.Time { return w.now })
	svcs := []*settlement.Service{w.svc, other}
	if _, err := w.svc.LinkFamily(w.adm, Active, Broke, "child"); err != nil {
		t.Fatal(err)
	}
	start := w.balance(acct)

	// Three settlements before the race, reversed during it.
	var earlier []*settlement.Settlement
	for range 3 {
		v := w.visit(w.h1, Active, H1, policy.GeneralOutpatient, "DRUG-A 300.00 1")
		st, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		earlier = append(earlier, st)
	}

	type op struct {
		name    string
		run     func() (*settlement.Settlement, error)
		st      *settlement.Settlement
		err     error
		reverse *settlement.Settlement // the settlement a reversal undid
	}
	var ops []*op
	add := func(name string, run func() (*settlement.Settlement, error)) {
		ops = append(ops, &op{name: name, run: run})
	}
	for i := range 8 {
		v := w.visit(w.h1, Active, H1, policy.GeneralOutpatient, "DRUG-A 150.00 1")
		add("H1 outpatient", func() (*settlement.Settlement, error) {
			return svcs[i%2].Settle(w.h1, v.MdtrtID, settlement.SettleRequest{})
		})
		v2 := w.visit(w.h2, Active, H2, policy.GeneralOutpatient, "DRUG-A 150.00 1")
		add("H2 outpatient", func() (*settlement.Settlement, error) {
			return svcs[(i+1)%2].Settle(w.h2, v2.MdtrtID, settlement.SettleRequest{})
		})
		v3 := w.visit(w.ph, Broke, PH, policy.Pharmacy, "DRUG-A 60.00 1")
		add("family pharmacy", func() (*settlement.Settlement, error) {
			return svcs[i%2].Settle(w.ph, v3.MdtrtID, settlement.SettleRequest{FamilyPsnNo: Active})
		})
	}
	for i := range 6 {
		v := w.visit(w.ph, Active, PH, policy.Pharmacy, "DRUG-A 80.00 1")
		add("own pharmacy", func() (*settlement.Settlement, error) {
			return svcs[i%2].Settle(w.ph, v.MdtrtID, settlement.SettleRequest{})
		})
	}
	for i := range 4 {
		v := w.visit(w.h2, Active, H2, policy.GeneralOutpatient, "DRUG-A 150.00 1")
		add("pay later", func() (*settlement.Settlement, error) {
			st, err := svcs[i%2].Settle(w.h2, v.MdtrtID, settlement.SettleRequest{PayMode: settlement.PayLater})
			if err != nil {
				return nil, err
			}
			if i%2 == 0 {
				return svcs[(i+1)%2].Complete(w.h2, st.SetlID, "wechat")
			}
			return svcs[(i+1)%2].Void(w.h2, st.SetlID)
		})
	}
	for i, st := range earlier {
		o := &op{name: "reversal", reverse: st}
		o.run = func() (*settlement.Settlement, error) { return svcs[i%2].Reverse(w.h1, st.SetlID) }
		ops = append(ops, o)
	}

	// Watch the account while the operations run.
	var samples, negatives atomic.Int64
	lowest := start
	var lowMu sync.Mutex
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if a, err := w.led.Account(context.Background(), acct); err == nil {
				samples.Add(1)
				if a.Available() < 0 || a.CreditBalance() < 0 {
					negatives.Add(1)
				}
				lowMu.Lock()
				lowest = min(lowest, a.Available())
				lowMu.Unlock()
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	gun := make(chan struct{})
	for _, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gun
			o.st, o.err = o.run()
		}()
	}
	close(gun)
	wg.Wait()
	close(stop)
	<-watched

	// The model: the start, minus what every settlement still standing
	// took from the account. A failed operation counts for nothing.
	model := start
	ok, failed := 0, 0
	var asked money.Fen
	for _, st := range earlier {
		model -= debited(st, acct)
	}
	for _, o := range ops {
		if o.err != nil {
			// Only "the state kept changing; try again" is an acceptable
			// refusal, and it must have left nothing.
			if !yibao.IsCode(o.err, yibao.CodeConflict) {
				t.Fatalf("%s: %v", o.name, o.err)
			}
			failed++
			continue
		}
		ok++
		switch {
		case o.reverse != nil:
			if o.st.Status != settlement.StatusReversed {
				t.Fatalf("reversal: status %s", o.st.Status)
			}
			model += debited(o.reverse, acct)
		case o.st.Status == settlement.StatusCompleted:
			model -= debited(o.st, acct)
			asked += o.st.MedfeeSumamt
		case o.st.Status == settlement.StatusVoided:
		default:
			t.Fatalf("%s ended %s", o.name, o.st.Status)
		}
	}
	acc, err := w.led.Account(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	if acc.CreditBalance() != model || acc.DebitsPending != 0 {
		t.Fatalf("account %s: posted %s, pending %s; the replay of %d successful operations says %s (diff %s)",
			acct, acc.CreditBalance(), acc.DebitsPending, ok, model, acc.CreditBalance()-model)
	}
	// The stored settlements agree with what the operations answered.
	var stored money.Fen
	rows, err := w.db.Query(context.Background(), `SELECT setl_id FROM settlements WHERE status = 'completed' AND (psn_no = ? OR psn_no = ?)`, Active, Broke)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		st, err := w.svc.GetSettlement(w.adm, id)
		if err != nil {
			t.Fatal(err)
		}
		stored += debited(st, acct)
	}
	if start-stored != model {
		t.Fatalf("the completed settlements in the database took %s from the account, the operations say %s", stored, start-model)
	}
	steps, negative, worst := w.replayAccount(acct)
	if negative > 0 || negatives.Load() > 0 || lowest < 0 {
		t.Fatalf("the account went below zero: %d of %d replayed steps (worst %s), %d of %d samples (lowest %s)",
			negative, steps, worst, negatives.Load(), samples.Load(), lowest)
	}
	w.checkLedger()
	t.Logf("R11: %d operations on one account (%d ok, %d refused to retry; bills %s yuan against a %s yuan account, 3 reversals), recalculated %d + %d times; negative balances 0 (%d replayed transfers, %d samples, lowest available %s), model diff 0 fen (final %s)",
		len(ops), ok, failed, asked, start, w.svc.Recalculations(), other.Recalculations(), steps, samples.Load(), lowest, model)
}

// TestPendingSettlementResolvesOnce (R12 at the settlement): pay-later
// settlements each get three completions and three voids at once, from
// two service instances; each ends completed or voided, never both, its
// holds posted or released once. Then one whose holds the ledger expired
// (its 24 h backstop) cannot be completed, is voided once, and everything
// it held is back.
func TestPendingSettlementResolvesOnce(t *testing.T) {
	w := newWorld(t)
	other := settlement.New(w.db, w.reg, w.led, nil)
	other.SetClock(func() time.Time { return w.now })
	svcs := []*settlement.Service{w.svc, other}
	before := w.balances()
	psns := []string{Active, Retired, Resident, Poor, Spouse, Active, Retired, Spouse}
	pend := make([]*settlement.Settlement, len(psns))
	for i, psn := range psns {
		v := w.visit(w.h1, psn, H1, policy.GeneralOutpatient, fmt.Sprintf("DRUG-A %d.00 1", 200+37*i), "SVC-C 50.00 1")
		st, err := w.svc.Settle(w.h1, v.MdtrtID, settlement.SettleRequest{PayMode: settlement.PayLater})
		if err != nil {
			t.Fatal(err)
		}
		pend[i] = st
	}
	type tally struct{ completed, voided, refused int }
	tallies := make([]tally, len(pend))
	var mu sync.Mutex
	var wg sync.WaitGroup
	gun := make(chan struct{})
	for i, st := range pend {
		for k := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gun
				svc := svcs[k%2]
				var err error
				if k < 3 {
					_, err = svc.Complete(w.h1, st.SetlID, "wechat")
				} else {
					_, err = svc.Void(w.h1, st.SetlID)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && k < 3:
					tallies[i].completed++
				case err == nil:
					tallies[i].voided++
				case yibao.IsCode(err, yibao.CodePrecondition) || yibao.IsCode(err, yibao.CodeConflict):
					tallies[i].refused++
				default:
					t.Errorf("settlement %d: %v", i, err)
				}
			}()
		}
	}
	close(gun)
	wg.Wait()
	want := map[string][2]money.Fen{}
	nCompleted, nVoided := 0, 0
	for i, st := range pend {
		got, err := w.svc.GetSettlement(w.h1, st.SetlID)
		if err != nil {
			t.Fatal(err)
		}
		posts := countLike(t, w, st.SetlID+":post:%")
		voids := countLike(t, w, st.SetlID+":void:%")
		legs := len(st.Legs)
		ta := tallies[i]
		switch got.Status {
		case settlement.StatusCompleted:
			if ta.voided != 0 || ta.completed == 0 || posts != legs || voids != 0 {
				t.Fatalf("settlement %d completed: %+v, %d posts and %d voids for %d holds", i, ta, posts, voids, legs)
			}
			for _, l := range got.Legs {
				d, c := want[l.Debit], want[l.Credit]
				d[0] -= l.Amount
				c[0] += l.Amount
				want[l.Debit], want[l.Credit] = d, c
			}
			nCompleted++
		case settlement.StatusVoided:
			if ta.completed != 0 || ta.voided == 0 || voids != legs || posts != 0 {
				t.Fatalf("settlement %d voided: %+v, %d posts and %d voids for %d holds", i, ta, posts, voids, legs)
			}
			nVoided++
		default:
			t.Fatalf("settlement %d ended %s", i, got.Status)
		}
	}
	after := w.balances()
	for id := range after {
		d := [2]money.Fen{after[id][0] - before[id][0], after[id][1] - before[id][1]}
		if d != want[id] {
			t.Fatalf("%s moved %s posted / %s pending, want %s / 0.00", id, d[0], d[1], want[id][0])
		}
	}
	w.checkLedger()

	// The ledger's backstop expires a forgotten pending settlement's holds.
	start := w.snapshot()
	v := w.visit(w.h2, Resident, H2, policy.GeneralOutpatient, "DRUG-A 400.00 1")
	st, err := w.svc.Settle(w.h2, v.MdtrtID, settlement.SettleRequest{PayMode: settlement.PayLater})
	if err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(25 * time.Hour)
	if n, err := w.led.ExpirePending(context.Background()); err != nil || n != len(st.Legs) {
		t.Fatalf("ledger expiry: %d of %d holds (%v)", n, len(st.Legs), err)
	}
	_, cerr := w.svc.Complete(w.h2, st.SetlID, "wechat")
	if cerr == nil || ledger.ReasonOf(cerr) != ledger.ReasonPendingExpired {
		t.Fatalf("completing after the holds expired: %v", cerr)
	}
	for range 2 {
		got, err := w.svc.Void(w.h2, st.SetlID)
		if err != nil || got.Status != settlement.StatusVoided {
			t.Fatalf("void after expiry: %v %v", got, err)
		}
	}
	if n, err := w.svc.ExpirePending(context.Background()); err != nil || n != 0 {
		t.Fatalf("the settlement sweeper found %d more (%v)", n, err)
	}
	if posts := countLike(t, w, st.SetlID+":post:%"); posts != 0 {
		t.Fatalf("%d holds posted after expiry", posts)
	}
	var restored []string
	end := w.snapshot()
	for k, v := range start {
		if end[k] != v && strings.HasPrefix(k, "bal ") {
			restored = append(restored, k+": "+v+" → "+end[k])
		}
		if end[k] != v && strings.HasPrefix(k, "acc ") {
			restored = append(restored, k+": "+v+" → "+end[k])
		}
	}
	sort.Strings(restored)
	if len(restored) > 0 {
		t.Fatalf("after expiry and void, not back where it was: %v", restored)
	}
	w.checkLedger()
	t.Logf("R12 (settlement): %d pay-later settlements × (3 completions + 3 voids) at once: %d completed, %d voided, double resolutions 0, nothing left held; ledger-expired holds: completion refused (%s), voided once, balances and accumulators restored",
		len(pend), nCompleted, nVoided, ledger.ReasonOf(cerr))
}

func countLike(t *testing.T, w *world, pattern string) int {
	t.Helper()
	var n int
	if err := w.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, pattern).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

package ledger

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"yibao/money"
)

type scenario struct {
	Name     string `json:"name"`
	Accounts []struct {
		ID     string       `json:"id"`
		Kind   AccountKind  `json:"kind"`
		Flags  AccountFlags `json:"flags"`
		Ledger string       `json:"ledger"`
	} `json:"accounts"`
	Steps []struct {
		Advance   int64 `json:"advance"` // seconds
		Transfers []struct {
			ID        string    `json:"id"`
			Debit     string    `json:"debit"`
			Credit    string    `json:"credit"`
			Amount    money.Fen `json:"amount"`
			PendingID string    `json:"pending_id"`
			Timeout   int64     `json:"timeout"`
			Flags     []string  `json:"flags"`
			Code      string    `json:"code"`
			UserData  string    `json:"user_data"`
		} `json:"transfers"`
		Want []string `json:"want"`
	} `json:"steps"`
	Balances map[string]struct {
		DebitsPosted   money.Fen `json:"debits_posted"`
		CreditsPosted  money.Fen `json:"credits_posted"`
		DebitsPending  money.Fen `json:"debits_pending"`
		CreditsPending money.Fen `json:"credits_pending"`
	} `json:"balances"`
	Statuses map[string]PendingStatus `json:"statuses"`
}

var flagNames = map[string]TransferFlags{"linked": Linked, "pending": Pending, "post": PostPending, "void": VoidPending}

func TestScenarios(t *testing.T) {
	b, err := os.ReadFile("testdata/scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var scs []scenario
	if err := json.Unmarshal(b, &scs); err != nil {
		t.Fatal(err)
	}
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) {
			book := NewBook(1)
			now := int64(1_700_000_000_000_000)
			for _, a := range sc.Accounts {
				l := a.Ledger
				if l == "" {
					l = CNY
				}
				if err := book.CreateAccount(Account{ID: a.ID, Kind: a.Kind, Flags: a.Flags, Ledger: l}, now); err != nil {
					t.Fatal(err)
				}
			}
			book.TakeChanges()
			for si, st := range sc.Steps {
				now += st.Advance * 1_000_000
				var ts []Transfer
				for _, x := range st.Transfers {
					tr := Transfer{ID: x.ID, DebitAccountID: x.Debit, CreditAccountID: x.Credit, Amount: x.Amount,
						PendingID: x.PendingID, Timeout: x.Timeout, Code: x.Code, UserData: x.UserData}
					for _, f := range x.Flags {
						tr.Flags |= flagNames[f]
					}
					ts = append(ts, tr)
				}
				res := book.Apply(ts, now)
				for i, r := range res {
					got := string(ReasonOf(r.Err))
					if r.Existed {
						got = "exists"
					}
					if got != st.Want[i] {
						t.Fatalf("step %d transfer %d (%s): got %q, want %q (%v)", si, i, ts[i].ID, got, st.Want[i], r.Err)
					}
				}
				book.TakeChanges()
				now += 1000
			}
			for id, want := range sc.Balances {
				a := book.Account(id)
				if a.DebitsPosted != want.DebitsPosted || a.CreditsPosted != want.CreditsPosted || a.DebitsPending != want.DebitsPending || a.CreditsPending != want.CreditsPending {
					t.Errorf("%s: got dp %s dpo %s cp %s cpo %s, want %+v", id, a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted, want)
				}
			}
			for id, want := range sc.Statuses {
				if got := book.Transfer(id).Status; got != want {
					t.Errorf("%s: status %s, want %s", id, got, want)
				}
			}
		})
	}
}

// TestRandomWorkloadKeepsInvariants applies random batches — plain,
// pending, post, void, linked chains, retries, bad input — and checks after
// each batch that the ledger balances, no constrained account breaks its
// flag, and every account equals the sum of the transfers that touched it.
func TestRandomWorkloadKeepsInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { randomWorkload(t, seed, 300) })
	}
}

func randomWorkload(t *testing.T, seed uint64, batches int) {
	r := rand.New(rand.NewPCG(seed, 99))
	book := NewBook(1)
	now := int64(1_700_000_000_000_000)
	ids := []string{"income", "fund", "acct1", "acct2", "recv", "line"}
	flags := []AccountFlags{0, DebitsMustNotExceedCredits, DebitsMustNotExceedCredits, DebitsMustNotExceedCredits, 0, CreditsMustNotExceedDebits}
	for i, id := range ids {
		book.CreateAccount(Account{ID: id, Ledger: CNY, Kind: KindSystem, Flags: flags[i]}, now)
	}
	var all []*Transfer
	var pendings []string
	n := 0
	for range batches {
		var ts []Transfer
		for k := 0; k < 1+r.IntN(8); k++ {
			n++
			tr := Transfer{ID: fmt.Sprint("t", n), DebitAccountID: ids[r.IntN(len(ids))], CreditAccountID: ids[r.IntN(len(ids))],
				Amount: money.Fen(r.IntN(5000) - 100)}
			switch x := r.IntN(10); {
			case x < 2:
				tr.Flags = Pending
				if r.IntN(2) == 0 {
					tr.Timeout = int64(1 + r.IntN(5))
				}
			case x < 4 && len(pendings) > 0:
				tr = Transfer{ID: tr.ID, PendingID: pendings[r.IntN(len(pendings))], Flags: PostPending, Amount: money.Fen(r.IntN(3000))}
				if r.IntN(2) == 0 {
					tr.Flags = VoidPending
					tr.Amount = 0
				}
			case x == 4 && n > 2:
				tr.ID = fmt.Sprint("t", r.IntN(n-1)+1) // a retry, same or different
			}
			if r.IntN(4) == 0 {
				tr.Flags |= Linked
			}
			ts = append(ts, tr)
		}
		ts[len(ts)-1].Flags &^= Linked
		now += int64(r.IntN(2_000_000))
		// Expire what is due, as the engine's sweeper would.
		for _, id := range pendings {
			p := book.Transfer(id)
			if p.Status == StatusPending && p.ExpiresAt != 0 && now >= p.ExpiresAt {
				ts = append(ts, ExpiryTransfer(id))
			}
		}
		book.Apply(ts, now)
		ch := book.TakeChanges()
		for _, tr := range ch.Transfers {
			all = append(all, tr)
			if tr.Flags&Pending != 0 {
				pendings = append(pendings, tr.ID)
			}
		}
		checkInvariants(t, book, ids, all)
	}
}

func checkInvariants(t *testing.T, book *Book, ids []string, all []*Transfer) {
	t.Helper()
	type sums struct{ dp, dpo, cp, cpo money.Fen }
	want := map[string]*sums{}
	for _, id := range ids {
		want[id] = &sums{}
	}
	seen := map[string]bool{}
	for _, tr := range all {
		if seen[tr.ID] {
			t.Fatalf("transfer %s stored twice", tr.ID)
		}
		seen[tr.ID] = true
		switch {
		case tr.Flags&Pending != 0:
			if tr.Status == StatusPending {
				want[tr.DebitAccountID].dp += tr.Amount
				want[tr.CreditAccountID].cp += tr.Amount
			}
		case tr.Flags&PostPending != 0, tr.Flags&(VoidPending|PostPending) == 0:
			want[tr.DebitAccountID].dpo += tr.Amount
			want[tr.CreditAccountID].cpo += tr.Amount
		}
	}
	var d, c money.Fen
	for _, id := range ids {
		a := book.Account(id)
		w := want[id]
		if a.DebitsPending != w.dp || a.DebitsPosted != w.dpo || a.CreditsPending != w.cp || a.CreditsPosted != w.cpo {
			t.Fatalf("%s = %+v, transfers say %+v", id, *a, *w)
		}
		if a.Flags&DebitsMustNotExceedCredits != 0 && a.DebitsPending+a.DebitsPosted > a.CreditsPosted {
			t.Fatalf("%s overdrawn: %+v", id, *a)
		}
		if a.Flags&CreditsMustNotExceedDebits != 0 && a.CreditsPending+a.CreditsPosted > a.DebitsPosted {
			t.Fatalf("%s over-credited: %+v", id, *a)
		}
		d += a.DebitsPosted + a.DebitsPending
		c += a.CreditsPosted + a.CreditsPending
	}
	if d != c {
		t.Fatalf("ledger does not balance: debits %s credits %s", d, c)
	}
}

func TestRollbackRestoresEverything(t *testing.T) {
	book := NewBook(1)
	book.CreateAccount(Account{ID: "a", Ledger: CNY, Kind: KindSystem}, 1)
	book.CreateAccount(Account{ID: "b", Ledger: CNY, Kind: KindSystem}, 1)
	book.Apply([]Transfer{{ID: "p", DebitAccountID: "a", CreditAccountID: "b", Amount: 100, Flags: Pending}}, 2)
	book.TakeChanges()
	before := *book.Account("a")
	book.Checkpoint()
	book.CreateAccount(Account{ID: "c", Ledger: CNY, Kind: KindSystem}, 3)
	book.Apply([]Transfer{{ID: "x", DebitAccountID: "a", CreditAccountID: "c", Amount: 5}, {ID: "v", PendingID: "p", Flags: VoidPending}}, 3)
	book.Rollback()
	if *book.Account("a") != before || book.Account("c") != nil || book.Transfer("x") != nil || book.Transfer("p").Status != StatusPending {
		t.Fatal("rollback left changes behind")
	}
	if ch := book.TakeChanges(); len(ch.Transfers)+len(ch.Accounts)+len(ch.Dirty)+len(ch.Resolved) != 0 || book.NextSeq() != 2 {
		t.Fatalf("rollback left changes to persist: %+v", ch)
	}
}

func BenchmarkApply(b *testing.B) {
	book := NewBook(1)
	book.CreateAccount(Account{ID: "income", Ledger: CNY, Kind: KindSystem}, 1)
	book.CreateAccount(Account{ID: "fund", Ledger: CNY, Kind: KindFundPool, Flags: DebitsMustNotExceedCredits}, 1)
	book.CreateAccount(Account{ID: "recv", Ledger: CNY, Kind: KindSystem}, 1)
	book.Apply([]Transfer{{ID: "seed", DebitAccountID: "income", CreditAccountID: "fund", Amount: 1 << 50}}, 1)
	batch := make([]Transfer, 1000)
	n := 0
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = Transfer{ID: fmt.Sprint(n), DebitAccountID: "fund", CreditAccountID: "recv", Amount: 100}
		}
		book.Apply(batch, 2)
		book.TakeChanges()
		book.Forget(false)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "transfers/s")
}

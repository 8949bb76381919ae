package settlement_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"yibao"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/settlement"
)

type settleCase struct {
	Name        string            `json:"name"`
	Work        string            `json:"work"`
	Person      string            `json:"person"`
	Institution string            `json:"institution"`
	VisitType   string            `json:"visit_type"`
	Discharge   bool              `json:"discharge"`
	UseAccount  *bool             `json:"use_account"`
	Lines       []string          `json:"lines"`
	Expect      map[string]string `json:"expect"`
	ExpectErr   string            `json:"expect_error"`
	Admissions  int               `json:"expect_admissions"`
}

var persons = map[string]string{"active": Active, "retired": Retired, "resident": Resident, "poor": Poor, "broke": Broke, "spouse": Spouse}
var institutions = map[string]string{"H1": H1, "H2": H2, "PH": PH}

func (w *world) as(code string) context.Context {
	switch code {
	case H1:
		return w.h1
	case H2:
		return w.h2
	case PH:
		return w.ph
	}
	return w.adm
}

// TestSettlementCases settles every case of testdata/settlements.json in a
// fresh world and checks the figures, the ledger and the accumulators.
func TestSettlementCases(t *testing.T) {
	data, err := os.ReadFile("testdata/settlements.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Cases []settleCase }
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 10 {
		t.Fatalf("only %d cases", len(file.Cases))
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			w := newWorld(t)
			psn, code := persons[c.Person], institutions[c.Institution]
			ctx := w.as(code)
			v := w.visit(ctx, psn, code, c.VisitType, c.Lines...)
			if c.Discharge {
				if _, err := w.svc.Discharge(ctx, v.MdtrtID, ""); err != nil {
					t.Fatal(err)
				}
			}
			before := w.snapshot()
			preview, perr := w.svc.PreSettle(ctx, v.MdtrtID, settlement.SettleRequest{UseAccount: c.UseAccount, Explain: true})
			st, err := w.svc.Settle(ctx, v.MdtrtID, settlement.SettleRequest{UseAccount: c.UseAccount})
			if c.ExpectErr != "" {
				if yibao.ErrorCode(err) != yibao.Code(c.ExpectErr) || yibao.ErrorCode(perr) != yibao.Code(c.ExpectErr) {
					t.Fatalf("settle err = %v, presettle err = %v; want %s", err, perr, c.ExpectErr)
				}
				if after := w.snapshot(); !equalMaps(before, after) {
					t.Fatalf("a refused settlement changed state")
				}
				return
			}
			if err != nil || perr != nil {
				t.Fatalf("settle: %v / presettle: %v", err, perr)
			}
			got := map[string]string{}
			js, _ := json.Marshal(st.Result.SetlInfo)
			json.Unmarshal(js, &got)
			for k, want := range c.Expect {
				if got[k] != want {
					t.Errorf("%s = %s, want %s (%s)", k, got[k], want, c.Work)
				}
			}
			pjs, _ := json.Marshal(preview.Result.SetlInfo)
			if string(pjs) != string(js) {
				t.Errorf("pre-settlement differs from settlement:\n%s\n%s", pjs, js)
			}
			if len(preview.Result.Explain) == 0 {
				t.Errorf("explain asked for, none given")
			}
			if st.Status != settlement.StatusCompleted {
				t.Errorf("status %s", st.Status)
			}
			w.checkMoved(before, st)
			acc, err := w.svc.Accumulators(w.adm, psn)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range acc {
				for k, want := range st.Result.Accumulators.After {
					if strings.HasSuffix(k, ".month") {
						continue
					}
					if a.Counters[k] != want {
						t.Errorf("accumulator %s = %s, want %s", k, a.Counters[k], want)
					}
				}
				if a.Admissions != c.Admissions {
					t.Errorf("admissions = %d, want %d", a.Admissions, c.Admissions)
				}
			}
			w.checkLedger()
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkMoved: the ledger moved exactly the settlement's legs.
func (w *world) checkMoved(before map[string]string, st *settlement.Settlement) {
	w.t.Helper()
	si := st.Result.SetlInfo
	var sum money.Fen
	want := map[string]money.Fen{}
	for _, l := range st.Legs {
		want[l.Debit] -= l.Amount
		want[l.Credit] += l.Amount
		if l.Amount <= 0 {
			w.t.Errorf("leg %s amount %s", l.Leg, l.Amount)
		}
		if l.Leg != "psn_cash_pay" {
			sum += l.Amount
		}
	}
	if sum != si.FundPaySumamt+si.AcctPay {
		w.t.Errorf("fund and account legs %s, want %s + %s", sum, si.FundPaySumamt, si.AcctPay)
	}
	if si.FundPaySumamt+si.AcctPay+si.PsnCashPay != si.MedfeeSumamt {
		w.t.Errorf("legs do not sum to the bill: %s + %s + %s != %s", si.FundPaySumamt, si.AcctPay, si.PsnCashPay, si.MedfeeSumamt)
	}
	after := w.snapshot()
	for id, d := range want {
		var b0, b1 int64
		var p string
		parse := func(s string, v *int64) { json.Unmarshal([]byte(firstField(s)), v) }
		parse(before["bal "+id], &b0)
		parse(after["bal "+id], &b1)
		_ = p
		if money.Fen(b1-b0) != d {
			w.t.Errorf("account %s moved %s, want %s", id, money.Fen(b1-b0), d)
		}
	}
}

func firstField(s string) string {
	for i := range s {
		if s[i] == ' ' {
			return s[:i]
		}
	}
	return s
}

func (w *world) checkLedger() {
	w.t.Helper()
	rep, err := engine.Check(context.Background(), w.db, w.now.UnixMicro())
	if err != nil {
		w.t.Fatal(err)
	}
	if !rep.OK() {
		w.t.Fatalf("ledger invariants broken: %+v", rep)
	}
}

package credit_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/credit"
	"yibao/demo"
	"yibao/ledger"
	"yibao/money"
	"yibao/pay"
	"yibao/settlement"
	"yibao/sim/banksim"
)

const hospital = "H37010000001"

type env struct {
	t       *testing.T
	a       *app.App
	d       *demo.Dataset
	srv     *httptest.Server
	cashier context.Context
	admin   context.Context
	drugs   []string // class A drugs
	extras  []string // class C (not covered) items: the whole amount is out of pocket
	people  []string // employees of 370100: [1:4] have a WeChat agreement, [1] a credit agreement
	used    int
	clock   time.Time
	mu      sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	a, d := apptest.Open(t, func(c *app.Config) { c.Wallets = "sim" })
	e := &env{t: t, a: a, d: d,
		cashier: yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: hospital}),
		admin:   yibao.WithPrincipal(context.Background(), yibao.System("test"))}
	e.srv = httptest.NewServer(a.Handler())
	t.Cleanup(e.srv.Close)
	a.Pay.SetNotifyBase(e.srv.URL + "/api/v1/pay/notify")
	a.Bank.Sim.SetCallbackURL(e.srv.URL + "/api/v1/credit/notify/" + banksim.DefaultBankCode)
	a.Pay.Tune(func(c *pay.Config) { c.ChargeTimeout, c.CheckAfter = 2*time.Second, 20*time.Millisecond })
	today := yibao.DateOf(time.Now())
	for _, it := range d.Catalog {
		if it.ValidFrom > today || (it.ValidTo != "" && it.ValidTo < today) {
			continue
		}
		switch {
		case it.Kind == yibao.ItemDrug && it.Class == "A":
			e.drugs = append(e.drugs, it.Code)
		case it.Class == "C":
			e.extras = append(e.extras, it.Code)
		}
	}
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == "370100" {
			e.people = append(e.people, c.PsnNo)
		}
	}
	if len(e.extras) == 0 || len(e.drugs) == 0 {
		t.Fatal("the demo catalog has no class A drugs or class C items")
	}
	return e
}

// holder is the demo's seeded credit-agreement holder (limit ¥5,000,
// WeChat withholding agreement for repayments).
func (e *env) holder() (string, *credit.Agreement) {
	e.t.Helper()
	psn := demo.AgreementHolders(e.d)[0]
	ag, err := e.a.Credit.ActiveAgreement(context.Background(), psn, credit.SceneAll)
	if err != nil {
		e.t.Fatal(err)
	}
	return psn, ag
}

// fresh returns an unused employee with a new credit agreement.
func (e *env) fresh() (string, *credit.Agreement) {
	e.t.Helper()
	psn := e.people[5+e.used]
	e.used++
	if _, err := e.a.Pay.SignAgreement(context.Background(), psn, "wechat", money.Yuan(5000)); err != nil {
		e.t.Fatal(err)
	}
	ag, err := e.a.Credit.Apply(context.Background(), psn, credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true})
	if err != nil {
		e.t.Fatal(err)
	}
	if ag.Status != credit.StatusActive || ag.Limit != money.Yuan(5000) {
		e.t.Fatalf("fresh agreement: %s, limit %s (%s)", ag.Status, ag.Limit, ag.Reason)
	}
	return psn, ag
}

// visit opens a visit with one not-covered line worth amount: all of it
// is out of pocket.
func (e *env) visit(psn, typ string, amount money.Fen) string {
	e.t.Helper()
	v, err := e.a.Settle.OpenVisit(e.cashier, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: hospital, Type: typ, DeptCode: "NK", DeptName: "内科"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.addLine(v.MdtrtID, "1", e.extras[0], amount)
	return v.MdtrtID
}

func (e *env) addLine(mdtrtID, sn, code string, amount money.Fen) {
	e.t.Helper()
	if _, err := e.a.Settle.AddFeeLines(e.cashier, mdtrtID, []settlement.FeeLineInput{
		{FeedetlSn: sn, CatalogCode: code, UnitPrice: amount, Quantity: money.MustRatio(1, 1)},
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) account(id string) *ledger.Account {
	e.t.Helper()
	a, err := e.a.Ledger.Account(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// agreement reloads an agreement.
func (e *env) agreement(psn, no string) *credit.Agreement {
	e.t.Helper()
	a, err := e.a.Credit.Agreement(context.Background(), psn, no)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// checkLine asserts the line's invariant: never overdrawn, and an active
// line has exactly limit − owed − held available; a suspended or closed
// one nothing.
func (e *env) checkLine(psn, no string) *credit.Agreement {
	e.t.Helper()
	ag := e.agreement(psn, no)
	acc := e.account(ledger.CreditLine(no).ID)
	if acc.DebitsPosted+acc.DebitsPending > acc.CreditsPosted {
		e.t.Fatalf("line %s overdrawn: debits %s + pending %s > credits %s", no, acc.DebitsPosted, acc.DebitsPending, acc.CreditsPosted)
	}
	want := ag.Limit - ag.Outstanding - acc.DebitsPending
	if ag.Status != credit.StatusActive || want < 0 {
		want = 0
	}
	if acc.Available() != want {
		e.t.Fatalf("line %s (%s): available %s, want limit %s − owed %s − held %s = %s", no, ag.Status, acc.Available(), ag.Limit, ag.Outstanding, acc.DebitsPending, want)
	}
	return ag
}

func (e *env) pay(mdtrtID string) (*pay.Order, error) {
	no := false
	return e.a.Pay.PayVisit(e.cashier, mdtrtID, pay.PayRequest{Channel: pay.ChannelCredit, UseAccount: &no})
}

func (e *env) settleOrder(id string) *pay.Order {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, err := e.a.Pay.Get(e.admin, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if o.Status != pay.StatusPaying || time.Now().After(deadline) {
			return o
		}
		if _, err := e.a.Pay.Sweep(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func load[T any](t *testing.T, path string) T {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

package settlement_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/policy"
	"yibao/registry"
	"yibao/settlement"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// world is a small region with funds, hospitals, a pharmacy, a catalog
// and insured persons, on a fixed clock (2026-06-15 10:00 China time).
type world struct {
	t    *testing.T
	db   *sqlstore.DB
	reg  *registry.Service
	led  *engine.Engine
	svc  *settlement.Service
	now  time.Time
	adm  context.Context // bureau administrator
	adm2 context.Context // a second administrator
	h1   context.Context // cashier of H37010000001 (level 3)
	h2   context.Context // cashier of H37010000002 (level 2)
	ph   context.Context // pharmacy P37010000001
}

const (
	H1 = "H37010000001"
	H2 = "H37010000002"
	PH = "P37010000001"
	HQ = "H37020000001" // another region's hospital

	Active   = "37010000000000000001" // employee, active, born 1980
	Retired  = "37010000000000000002" // employee, retired, born 1955
	Resident = "37010000000000000003" // resident, born 1990
	Poor     = "37010000000000000004" // resident, low income, born 1970
	Spouse   = "37010000000000000005" // employee, active; spouse of Active
	Broke    = "37010000000000000006" // employee with an empty personal account
)

func idNumber(prefix17 string) string {
	w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, c := range prefix17 {
		sum += int(c-'0') * w[i]
	}
	return prefix17 + string("10X98765432"[sum%11])
}

func user(code string) *yibao.Principal {
	return &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "cashier." + strings.ToLower(code), Role: yibao.RoleCashier, Institution: code}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db := sqltest.Open(t)
	keys, err := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, db: db, now: time.Date(2026, 6, 15, 2, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return w.now }
	w.reg = registry.New(db, keys, []byte("blind-index-key-for-tests-only!!"))
	w.reg.SetClock(clock)
	w.led, err = engine.Open(context.Background(), db, engine.Options{ExpiryInterval: -1, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.led.Close() })
	w.svc = settlement.New(db, w.reg, w.led, nil)
	w.svc.SetClock(clock)
	bg := context.Background()
	w.adm = yibao.WithPrincipal(bg, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "admin", Role: yibao.RoleAdmin})
	w.adm2 = yibao.WithPrincipal(bg, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "auditor", Role: yibao.RoleAdmin})
	w.h1 = yibao.WithPrincipal(bg, user(H1))
	w.h2 = yibao.WithPrincipal(bg, user(H2))
	w.ph = yibao.WithPrincipal(bg, user(PH))
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	a := w.adm
	must(w.reg.CreateRegion(a, yibao.Region{Admdvs: "370100", Name: "济南市"}))
	must(w.reg.CreateRegion(a, yibao.Region{Admdvs: "370200", Name: "青岛市"}))
	for _, s := range []yibao.Scheme{
		{Insutype: "310", Name: "职工基本医疗保险", Kind: yibao.SchemeEmployeeBasic},
		{Insutype: "330", Name: "职工大额医疗费用补助", Kind: yibao.SchemeLargeAmount},
		{Insutype: "390", Name: "城乡居民基本医疗保险", Kind: yibao.SchemeResidentBasic},
		{Insutype: "392", Name: "城乡居民大病保险", Kind: yibao.SchemeCriticalIllness},
		{Insutype: "610", Name: "医疗救助", Kind: yibao.SchemeAssistance},
	} {
		must(w.reg.CreateScheme(a, s))
	}
	for _, in := range []yibao.Institution{
		{Code: H1, Name: "第一医院", Kind: yibao.KindHospital, Level: 3, Admdvs: "370100"},
		{Code: H2, Name: "第二医院", Kind: yibao.KindHospital, Level: 2, Admdvs: "370100"},
		{Code: PH, Name: "大药房", Kind: yibao.KindPharmacy, Level: 0, Admdvs: "370100"},
		{Code: HQ, Name: "青岛医院", Kind: yibao.KindHospital, Level: 3, Admdvs: "370200"},
	} {
		must(w.reg.CreateInstitution(a, in))
	}
	capB := money.Yuan(250)
	for _, it := range []yibao.CatalogItem{
		{Code: "DRUG-A", Name: "阿莫西林胶囊", Kind: yibao.ItemDrug, Class: yibao.ClassA, Unit: "盒", ValidFrom: "2020-01-01"},
		{Code: "DRUG-B", Name: "头孢克肟片", Kind: yibao.ItemDrug, Class: yibao.ClassB, SelfPayRatio: money.Percent(10), Unit: "盒", ValidFrom: "2020-01-01"},
		{Code: "DRUG-B-CAP", Name: "注射用头孢曲松钠", Kind: yibao.ItemDrug, Class: yibao.ClassB, SelfPayRatio: money.Percent(10), PriceCap: &capB, Unit: "支", ValidFrom: "2020-01-01"},
		{Code: "SVC-C", Name: "美容项目", Kind: yibao.ItemService, Class: yibao.ClassC, Unit: "次", ValidFrom: "2020-01-01"},
		{Code: "OLD-A", Name: "停用药品", Kind: yibao.ItemDrug, Class: yibao.ClassA, Unit: "盒", ValidFrom: "2020-01-01", ValidTo: "2025-12-31"},
	} {
		must(w.reg.CreateCatalogItem(a, it))
	}
	persons := []struct {
		psn, id17, name string
		cat             yibao.PersonCategory
		insutype        string
	}{
		{Active, "37010219800101001", "张伟", yibao.CategoryActive, "310"},
		{Retired, "37010219550505002", "王芳", yibao.CategoryRetired, "310"},
		{Resident, "37010219900202003", "李强", yibao.CategoryResident, "390"},
		{Poor, "37010219700303004", "赵敏", yibao.CategoryLowIncome, "390"},
		{Spouse, "37010219820404005", "刘洋", yibao.CategoryActive, "310"},
		{Broke, "37010219850606006", "陈静", yibao.CategoryActive, "310"},
	}
	for i, p := range persons {
		must(w.reg.CreatePerson(a, yibao.Person{PsnNo: p.psn, IDNumber: idNumber(p.id17), Name: p.name, Category: p.cat, Admdvs: "370100",
			Phone: fmt.Sprintf("139000000%02d", i)}))
		must(w.reg.CreateCoverage(a, yibao.Coverage{PsnNo: p.psn, Insutype: p.insutype, Admdvs: "370100", StartDate: "2020-01-01", Status: yibao.CoverageActive}))
	}
	sys := yibao.WithPrincipal(bg, yibao.System("test"))
	must(w.svc.BootstrapPolicy(sys, policy.DemoPolicyJSON()))
	if _, err := w.svc.EnsureChart(bg); err != nil {
		t.Fatal(err)
	}
	// Money in: every fund of 370100 gets 10 million yuan, personal
	// accounts 2,000 yuan (Broke none).
	accs, _ := w.svc.ChartAccounts(bg)
	for _, acc := range accs {
		amt := money.Fen(0)
		switch {
		case acc.Kind == ledger.KindPersonalAccount && acc.ID != "acct:"+Broke:
			amt = money.Yuan(2000)
		case strings.HasPrefix(acc.ID, "fund:370100:") || acc.ID == "assist:370100":
			amt = money.Yuan(10_000_000)
		}
		if amt > 0 {
			if _, err := w.led.Transfer(bg, ledger.Transfer{ID: "seed:" + acc.ID, DebitAccountID: "income:" + acc.ID, CreditAccountID: acc.ID,
				Amount: amt, Ledger: ledger.CNY, Code: "seed"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func (w *world) balance(id string) money.Fen {
	w.t.Helper()
	b, err := w.led.Balance(context.Background(), id)
	if err != nil {
		if yibao.IsCode(err, yibao.CodeNotFound) {
			return 0
		}
		w.t.Fatal(err)
	}
	return b.Posted
}

func (w *world) available(id string) money.Fen {
	w.t.Helper()
	b, err := w.led.Balance(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return b.Available
}

// visit opens a visit and uploads lines given as "CODE price qty".
func (w *world) visit(ctx context.Context, psn, code, typ string, lines ...string) *settlement.Visit {
	w.t.Helper()
	v, err := w.svc.OpenVisit(ctx, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: code, Type: typ, DeptCode: "NK", DeptName: "内科"})
	if err != nil {
		w.t.Fatal(err)
	}
	if len(lines) > 0 {
		if _, err := w.svc.AddFeeLines(ctx, v.MdtrtID, parseLines(w.t, lines)); err != nil {
			w.t.Fatal(err)
		}
	}
	return v
}

var lineSeq int

func parseLines(t *testing.T, lines []string) []settlement.FeeLineInput {
	var out []settlement.FeeLineInput
	for _, l := range lines {
		var code, price, qty string
		fmt.Sscan(l, &code, &price, &qty)
		p, err := money.ParseYuan(price)
		if err != nil {
			t.Fatal(err)
		}
		q, err := money.ParseRatio(qty)
		if err != nil {
			t.Fatal(err)
		}
		lineSeq++
		out = append(out, settlement.FeeLineInput{FeedetlSn: fmt.Sprint("L", lineSeq), CatalogCode: code, UnitPrice: p, Quantity: q})
	}
	return out
}

// snapshot is every balance and accumulator a settlement can change.
func (w *world) snapshot(psns ...string) map[string]string {
	w.t.Helper()
	out := map[string]string{}
	rows, err := w.db.Query(context.Background(), `SELECT id, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_accounts`)
	if err != nil {
		w.t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var dp, cp, dpe, cpe int64
		rows.Scan(&id, &dp, &cp, &dpe, &cpe)
		out["bal "+id] = fmt.Sprint(cp-dp, " pending ", cpe-dpe)
	}
	rows.Close()
	rows, err = w.db.Query(context.Background(), `SELECT psn_no, insutype, acc_year, admissions, counters FROM accumulators`)
	if err != nil {
		w.t.Fatal(err)
	}
	for rows.Next() {
		var psn, ins, counters string
		var year, adm int
		rows.Scan(&psn, &ins, &year, &adm, &counters)
		if counters == "{}" && adm == 0 {
			continue
		}
		out[fmt.Sprint("acc ", psn, " ", ins, " ", year)] = fmt.Sprint(adm, " ", counters)
	}
	rows.Close()
	return out
}

package app

import (
	"context"
	"fmt"
	"time"

	"yibao"
	"yibao/auth"
	"yibao/demo"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/pay"
	"yibao/registry"
	"yibao/review"
	"yibao/settlement"
	"yibao/sim/walletsim"
)

// SeedReport counts what Seed wrote.
type SeedReport struct {
	Regions, Schemes, Institutions, Catalog, Persons, Coverages, Users, APIKeys            int
	Policies, Accounts, Slots, Settlements, Channels, Payers, Agreements, CreditAgreements int
	ReviewRules, Alerts                                                                    int
	Funded                                                                                 money.Fen
	Took                                                                                   time.Duration
}

// DemoDataset is the demo dataset of the node's province,
// demo.BuildProvince(Config.DemoProvince): what Seed expects.
func (a *App) DemoDataset() *demo.Dataset { return demo.BuildProvince(a.Config.DemoProvince) }

// Seed loads the demo dataset into an empty database through the same
// services the API uses, so every record passes the same validation. It
// refuses to touch a database that already has regions, and a dataset of
// another province than Config.DemoProvince (see DemoDataset).
func (a *App) Seed(ctx context.Context, d *demo.Dataset) (*SeedReport, error) {
	start := time.Now()
	if d.Province != a.Config.DemoProvince {
		return nil, yibao.Errorf(yibao.CodePrecondition, "the demo dataset is province %s but this node's demo_province is %s", d.Province, a.Config.DemoProvince)
	}
	var n int
	if err := a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM regions`).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "the database already has data; seed only a fresh one")
	}
	ctx = yibao.WithPrincipal(ctx, yibao.System("seed"))
	r := &SeedReport{}
	for _, x := range d.Regions {
		if _, err := a.Registry.CreateRegion(ctx, x); err != nil {
			return nil, fmt.Errorf("seed region %s: %w", x.Admdvs, err)
		}
		r.Regions++
	}
	for _, x := range d.Schemes {
		if _, err := a.Registry.CreateScheme(ctx, x); err != nil {
			return nil, fmt.Errorf("seed scheme %s: %w", x.Insutype, err)
		}
		r.Schemes++
	}
	for _, x := range d.Institutions {
		if _, err := a.Registry.CreateInstitution(ctx, x); err != nil {
			return nil, fmt.Errorf("seed institution %s: %w", x.Code, err)
		}
		r.Institutions++
	}
	csv := demo.CatalogCSV(d.Catalog)
	items, err := a.Registry.ImportBytes(ctx, registry.ImportCatalog, csv)
	if err != nil {
		return nil, fmt.Errorf("seed catalog: %w", err)
	}
	r.Catalog = items
	covs, err := a.Registry.ImportBytes(ctx, registry.ImportPersons, demo.PersonsCSV(d.Persons, d.Coverages))
	if err != nil {
		return nil, fmt.Errorf("seed persons: %w", err)
	}
	r.Coverages = covs
	r.Persons = len(d.Persons)
	for _, u := range d.Users {
		if _, err := a.Auth.CreateUser(ctx, auth.NewUser{Username: u.Username, Password: u.Password, Role: yibao.Role(u.Role),
			FixmedinsCode: u.FixmedinsCode, DisplayName: u.DisplayName}); err != nil {
			return nil, fmt.Errorf("seed user %s: %w", u.Username, err)
		}
		r.Users++
	}
	for _, k := range d.APIKeys {
		if _, err := a.Auth.CreateAPIKey(ctx, k.FixmedinsCode, k.Alg, k.KeyID, k.Secret, nil); err != nil {
			return nil, fmt.Errorf("seed key %s: %w", k.KeyID, err)
		}
		r.APIKeys++
	}
	if a.Settle != nil {
		if err := a.seedMoney(ctx, d, r); err != nil {
			return nil, err
		}
	}
	if a.Ecert != nil {
		if err := a.Ecert.EnsurePlatforms(ctx); err != nil {
			return nil, err
		}
		for _, ch := range demo.Channels() {
			if _, err := a.Ecert.CreateChannel(ctx, ch.ID, ch.Name, demo.ChannelKey(ch.ID).Public().Bytes()); err != nil {
				return nil, fmt.Errorf("seed channel %s: %w", ch.ID, err)
			}
			r.Channels++
		}
	}
	if a.Wallets != nil && a.Pay != nil {
		if err := a.seedWallets(ctx, d, r); err != nil {
			return nil, err
		}
	}
	if a.Bank != nil && a.Wallets != nil {
		if err := a.seedCredit(ctx, d, r); err != nil {
			return nil, err
		}
	}
	if a.Review != nil {
		if err := a.seedReview(ctx, d, r); err != nil {
			return nil, err
		}
	}
	r.Took = time.Since(start)
	return r, nil
}

// DemoWalletBalance is what every demo person has in each simulated wallet.
const DemoWalletBalance = money.Fen(1_000_000) // 10,000 yuan

// seedWallets gives every demo person an account in both simulated
// wallets and signs a WeChat Pay withholding agreement for the first few
// employees of the capital region, so a one-code payment works at once.
func (a *App) seedWallets(ctx context.Context, d *demo.Dataset, r *SeedReport) error {
	a.RestoreWalletPayers(d)
	r.Payers = 2 * len(d.Persons)
	for _, psn := range demo.AgreementHolders(d) {
		if _, err := a.Pay.SignAgreement(ctx, psn, "wechat", money.Yuan(2000)); err != nil {
			return fmt.Errorf("seed agreement for %s: %w", psn, err)
		}
		r.Agreements++
	}
	return nil
}

// RestoreWalletPayers (re)creates the demo persons' simulated wallet
// accounts: the simulators keep state in memory only.
func (a *App) RestoreWalletPayers(d *demo.Dataset) { AddDemoPayers(a.Wallets, d) }

// AddDemoPayers gives every demo person an account with
// DemoWalletBalance in both simulated wallets of w.
func AddDemoPayers(w *walletsim.Server, d *demo.Dataset) {
	for _, p := range d.Persons {
		for _, ch := range []string{"wechat", "alipay"} {
			w.AddPayer(ch, pay.PayerRef(ch, p.PsnNo), int64(DemoWalletBalance))
		}
	}
}

// seedMoney publishes the demo policies, creates the chart of accounts,
// puts money into every fund and employee personal account, links one
// family, publishes today's appointment slots and settles a few bills, so
// that the console has something to show.
func (a *App) seedMoney(ctx context.Context, d *demo.Dataset, r *SeedReport) error {
	for _, doc := range demo.PolicyDocs(d.Province) {
		if _, err := a.Settle.BootstrapPolicy(ctx, doc); err != nil {
			return fmt.Errorf("seed policy: %w", err)
		}
		r.Policies++
	}
	n, err := a.Settle.EnsureChart(ctx)
	if err != nil {
		return fmt.Errorf("seed chart of accounts: %w", err)
	}
	r.Accounts = n
	accs, err := a.Settle.ChartAccounts(ctx)
	if err != nil {
		return err
	}
	var ts []ledger.Transfer
	for i, acc := range accs {
		var amt money.Fen
		switch acc.Kind {
		case ledger.KindFundPool, ledger.KindLargeAmountFund, ledger.KindCriticalIllness, ledger.KindAssistanceFund:
			amt = money.Yuan(50_000_000)
		case ledger.KindPersonalAccount:
			amt = money.Yuan(int64(300 + (i*7919)%4700))
		default:
			continue
		}
		ts = append(ts, ledger.Transfer{ID: "seed:" + acc.ID, DebitAccountID: ledger.FundIncome(acc.ID).ID, CreditAccountID: acc.ID,
			Amount: amt, Ledger: ledger.CNY, Code: "contribution"})
		r.Funded += amt
	}
	for len(ts) > 0 {
		k := min(len(ts), 1000)
		if _, err := a.Ledger.Submit(ctx, engine.Unit{Transfers: ts[:k]}); err != nil {
			return fmt.Errorf("seed money: %w", err)
		}
		ts = ts[k:]
	}
	var employees []string
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == d.CapitalRegion() {
			employees = append(employees, c.PsnNo)
		}
	}
	if len(employees) >= 2 {
		if _, err := a.Settle.LinkFamily(ctx, employees[0], employees[1], "spouse"); err != nil {
			return fmt.Errorf("seed family link: %w", err)
		}
	}
	today := yibao.DateOf(time.Now())
	type period = struct {
		Start    string `json:"start"`
		End      string `json:"end"`
		Capacity int    `json:"capacity"`
	}
	for _, in := range d.Institutions {
		if in.Kind != yibao.KindHospital {
			continue
		}
		for _, dept := range [][2]string{{"NK", "内科"}, {"WK", "外科"}, {"EK", "儿科"}} {
			list, err := a.Settle.PublishSchedule(ctx, settlement.ScheduleRequest{FixmedinsCode: in.Code, DeptCode: dept[0], DeptName: dept[1],
				Date: today, Periods: []period{{"08:00", "10:00", 20}, {"10:00", "12:00", 20}, {"14:00", "17:00", 30}}})
			if err != nil {
				return fmt.Errorf("seed slots: %w", err)
			}
			r.Slots += len(list)
		}
	}
	// A few settled outpatient bills at the first hospital.
	var h1 string
	for _, in := range d.Institutions {
		if in.Kind == yibao.KindHospital && in.Admdvs == d.CapitalRegion() {
			h1 = in.Code
			break
		}
	}
	var drugs []string
	for _, it := range d.Catalog {
		if it.Kind == yibao.ItemDrug && (it.ValidTo == "" || it.ValidTo >= today) && it.ValidFrom <= today && len(drugs) < 6 {
			drugs = append(drugs, it.Code)
		}
	}
	for i, psn := range employees {
		if i >= 4 || len(drugs) < 2 {
			break
		}
		v, err := a.Settle.OpenVisit(ctx, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: h1, Type: "general_outpatient", DeptCode: "NK", DeptName: "内科"})
		if err != nil {
			return fmt.Errorf("seed visit: %w", err)
		}
		lines := []settlement.FeeLineInput{
			{FeedetlSn: "1", CatalogCode: drugs[i%len(drugs)], UnitPrice: money.Fen(4580 + 1310*i), Quantity: money.MustRatio(int64(1+i%3), 1)},
			{FeedetlSn: "2", CatalogCode: drugs[(i+1)%len(drugs)], UnitPrice: money.Fen(12800 + 990*i), Quantity: money.MustRatio(1, 1)},
		}
		if _, err := a.Settle.AddFeeLines(ctx, v.MdtrtID, lines); err != nil {
			return fmt.Errorf("seed fee lines: %w", err)
		}
		if _, err := a.Settle.Settle(ctx, v.MdtrtID, settlement.SettleRequest{}); err != nil {
			return fmt.Errorf("seed settlement: %w", err)
		}
		r.Settlements++
	}
	return nil
}

// DemoRestrictedDrug is the demo's drug with a bureau diagnosis rule:
// 利司那肽注射液 is paid only for type 2 diabetes (ICD-10 E11).
const DemoRestrictedDrug = "XA10BJL366B002010181708"

// seedReview writes the bureau's demo diagnosis rule and settles one
// person's bills at three hospitals today, so the review queue has an
// alert to show.
func (a *App) seedReview(ctx context.Context, d *demo.Dataset, r *SeedReport) error {
	if _, err := a.Review.AddRule(ctx, review.Rule{Kind: "diagnosis", Code: DemoRestrictedDrug, Value: "E11", Action: "self_pay",
		Note: "限二甲双胍等口服降糖药或胰岛素控制效果不佳的BMI≥25的2型糖尿病患者 (type 2 diabetes only)"}); err != nil {
		return fmt.Errorf("seed review rule: %w", err)
	}
	r.ReviewRules++
	var hospitals, employees []string
	for _, in := range d.Institutions {
		if in.Kind == yibao.KindHospital && in.Admdvs == d.CapitalRegion() {
			hospitals = append(hospitals, in.Code)
		}
	}
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == d.CapitalRegion() {
			employees = append(employees, c.PsnNo)
		}
	}
	if len(hospitals) < 3 || len(employees) < 8 {
		return nil
	}
	today := yibao.DateOf(time.Now())
	var drug string
	for _, it := range d.Catalog {
		if it.Kind == yibao.ItemDrug && it.Class == "A" && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			drug = it.Code
			break
		}
	}
	psn := employees[7] // a person at three hospitals in one day
	for i, h := range hospitals[:3] {
		v, err := a.Settle.OpenVisit(ctx, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: h, Type: "general_outpatient", DeptCode: "NK", DeptName: "内科"})
		if err != nil {
			return fmt.Errorf("seed review visit: %w", err)
		}
		if _, err := a.Settle.AddFeeLines(ctx, v.MdtrtID, []settlement.FeeLineInput{{FeedetlSn: "1", CatalogCode: drug,
			UnitPrice: money.Fen(8800 + 1000*i), Quantity: money.MustRatio(1, 1)}}); err != nil {
			return fmt.Errorf("seed review lines: %w", err)
		}
		if _, err := a.Settle.Settle(ctx, v.MdtrtID, settlement.SettleRequest{}); err != nil {
			return fmt.Errorf("seed review settlement: %w", err)
		}
		r.Settlements++
	}
	n, err := a.Review.Scan(ctx, today)
	r.Alerts = n
	return err
}

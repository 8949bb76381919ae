package funds

import (
	"context"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/money"
)

// PrepareCrediting prepares the monthly crediting (划入) of personal
// accounts in a region: each active employee gets the region's share of
// the month's individual and employer contributions (imported and
// approved), each retiree the region's fixed monthly credit, from the
// employee pooling fund. One run per region and month: preparing again
// returns the live run.
func (s *Service) PrepareCrediting(ctx context.Context, admdvs, period string) (*Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	start, _, err := periodRange(period)
	if err != nil {
		return nil, err
	}
	if r, err := s.existing(ctx, KindCrediting, admdvs, period); err != nil || r != nil {
		return r, err
	}
	day := yibao.DateOf(time.UnixMicro(start))
	rules, err := s.RulesOn(ctx, admdvs, day)
	if err != nil {
		return nil, err
	}
	pool := ledger.FundPool(admdvs, "310")
	type share struct{ individual, employer money.Fen }
	shares := map[string]*share{}
	var order []string
	rows, err := s.db.Query(ctx, `SELECT c.psn_no, c.kind, c.amount FROM contributions c JOIN fund_runs r ON r.run_id = c.run_id
		WHERE c.admdvs = ? AND c.period = ? AND c.insutype = '310' AND r.status = 'done' ORDER BY c.psn_no, c.kind`, admdvs, period)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var psn, kind string
		var amt money.Fen
		if err := rows.Scan(&psn, &kind, &amt); err != nil {
			rows.Close()
			return nil, err
		}
		sh := shares[psn]
		if sh == nil {
			sh = &share{}
			shares[psn] = sh
			order = append(order, psn)
		}
		if kind == "individual" {
			sh.individual += amt
		} else {
			sh.employer += amt
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var lines []Line
	var employees, retirees int
	for _, psn := range order {
		sh := shares[psn]
		amt := sh.individual.Mul(rules.IndividualToAccount, money.Down) + sh.employer.Mul(rules.EmployerToAccount, money.Down)
		if amt <= 0 {
			continue
		}
		lines = append(lines, Line{PsnNo: psn, Kind: "employee", Period: period, Debit: pool.ID, Credit: ledger.PersonalAccount(psn).ID, Amount: amt,
			Detail: map[string]any{"individual": sh.individual, "employer": sh.employer}})
		employees++
	}
	if rules.RetireeMonthly > 0 {
		ps, err := s.db.Strings(ctx, `SELECT DISTINCT p.psn_no FROM persons p JOIN coverages c ON c.psn_no = p.psn_no
			WHERE p.category = 'retired' AND c.insutype = '310' AND c.admdvs = ? AND c.start_date <= ? AND (c.end_date IS NULL OR c.end_date >= ?)
			ORDER BY p.psn_no`, admdvs, day, day)
		if err != nil {
			return nil, err
		}
		for _, psn := range ps {
			lines = append(lines, Line{PsnNo: psn, Kind: "retiree", Period: period, Debit: pool.ID, Credit: ledger.PersonalAccount(psn).ID,
				Amount: rules.RetireeMonthly})
			retirees++
		}
	}
	if len(lines) == 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "nothing to credit in %s for %s: no approved employee contributions and no retirees", admdvs, period)
	}
	r := &Run{Kind: KindCrediting, Admdvs: admdvs, Period: period, Summary: map[string]any{"employees": employees, "retirees": retirees,
		"individual_to_account": rules.IndividualToAccount, "employer_to_account": rules.EmployerToAccount, "retiree_monthly": rules.RetireeMonthly}}
	out, err := s.prepared(ctx, r, "", lines, nil)
	if err == errExists {
		return s.existing(ctx, KindCrediting, admdvs, period)
	}
	return out, err
}

package settlement

import (
	"context"

	"yibao"
	"yibao/ledger"
)

// Channels are the wallet providers whose clearing accounts exist from the
// start (more are created on first use).
var Channels = []string{"wechat", "alipay", "unionpay"}

// ChartAccounts lists the chart of accounts the registry implies: for
// every region × scheme its fund (and the fund's income account), every
// region's assistance fund, every institution's receivable, bank and
// counter-cash accounts, every employee's personal account, and the
// channels' clearing accounts. Creating them is idempotent.
func (s *Service) ChartAccounts(ctx context.Context) ([]ledger.Account, error) {
	var out []ledger.Account
	fund := func(a ledger.Account) { out = append(out, a, ledger.FundIncome(a.ID)) }
	regions, err := s.db.Strings(ctx, `SELECT admdvs FROM regions ORDER BY admdvs`)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT insutype, kind FROM schemes ORDER BY insutype`)
	if err != nil {
		return nil, err
	}
	type scheme struct{ insutype, kind string }
	var schemes []scheme
	for rows.Next() {
		var x scheme
		if err := rows.Scan(&x.insutype, &x.kind); err != nil {
			rows.Close()
			return nil, err
		}
		schemes = append(schemes, x)
	}
	rows.Close()
	for _, r := range regions {
		fund(ledger.AssistanceFund(r))
		for _, sc := range schemes {
			switch yibao.SchemeKind(sc.kind) {
			case yibao.SchemeEmployeeBasic, yibao.SchemeResidentBasic:
				fund(ledger.FundPool(r, sc.insutype))
			case yibao.SchemeCriticalIllness:
				fund(ledger.LayerFund(r, sc.insutype, ledger.KindCriticalIllness))
			case yibao.SchemeAssistance:
				// one assistance fund per region, above
			default:
				fund(ledger.LayerFund(r, sc.insutype, ledger.KindLargeAmountFund))
			}
		}
	}
	codes, err := s.db.Strings(ctx, `SELECT fixmedins_code FROM institutions ORDER BY fixmedins_code`)
	if err != nil {
		return nil, err
	}
	for _, c := range codes {
		out = append(out, ledger.InstitutionAccounts(c)...)
	}
	psns, err := s.db.Strings(ctx, `SELECT DISTINCT psn_no FROM coverages WHERE insutype = '310' ORDER BY psn_no`)
	if err != nil {
		return nil, err
	}
	for _, p := range psns {
		a := ledger.PersonalAccount(p)
		out = append(out, a, ledger.FundIncome(a.ID))
	}
	for _, ch := range Channels {
		out = append(out, ledger.ChannelClearing(ch))
	}
	return out, nil
}

// EnsureChart creates the chart of accounts (idempotently) and returns how
// many accounts it holds. The platform runs it at start and after imports;
// settlements also create the accounts they touch, so a person imported a
// moment ago can settle before the next run.
func (s *Service) EnsureChart(ctx context.Context) (int, error) {
	accs, err := s.ChartAccounts(ctx)
	if err != nil {
		return 0, err
	}
	total := len(accs)
	for len(accs) > 0 {
		n := min(len(accs), 2000)
		if err := s.led.CreateAccounts(ctx, accs[:n]...); err != nil {
			return 0, err
		}
		accs = accs[n:]
	}
	return total, nil
}

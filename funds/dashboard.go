package funds

import (
	"context"
	"strings"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/money"
)

// FundView is one fund's figures for the bureau's dashboard.
type FundView struct {
	Account     string      `json:"account"`
	Kind        string      `json:"kind"`
	Balance     money.Fen   `json:"balance"`
	DaysOfCover *int        `json:"days_of_cover"` // balance ÷ the average daily outgo of the last 90 days; null with no outgo
	Months      []FundMonth `json:"months"`        // oldest first
}

// FundMonth is one month of a fund.
type FundMonth struct {
	Month   string    `json:"month"`
	Income  money.Fen `json:"income"`  // contributions and allocations
	Outgo   money.Fen `json:"outgo"`   // settlements, account crediting, corrections, net of money returned (reversals)
	Balance money.Fen `json:"balance"` // at the end of the month
}

// Dashboard returns income, outgo, balance and days of cover per fund of
// a region for the last months (administrators).
func (s *Service) Dashboard(ctx context.Context, admdvs string, months int) ([]FundView, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if months <= 0 || months > 36 {
		months = 12
	}
	accs, err := s.db.Strings(ctx, `SELECT id FROM ledger_accounts WHERE id LIKE ? OR id = ? ORDER BY id`, "fund:"+admdvs+":%", "assist:"+admdvs)
	if err != nil {
		return nil, err
	}
	now := s.now().In(yibao.ChinaTime)
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, yibao.ChinaTime).AddDate(0, -(months - 1), 0)
	out := []FundView{}
	for _, id := range accs {
		acc, err := s.led.Account(ctx, id)
		if err != nil {
			return nil, err
		}
		v := FundView{Account: id, Kind: string(acc.Kind), Balance: acc.CreditBalance()}
		idx := map[string]int{}
		for m := range months {
			t := first.AddDate(0, m, 0)
			idx[t.Format("2006-01")] = m
			v.Months = append(v.Months, FundMonth{Month: t.Format("2006-01")})
		}
		rows, err := s.db.Query(ctx, `SELECT debit_account_id, credit_account_id, amount, created_at FROM ledger_transfers
			WHERE (debit_account_id = ? OR credit_account_id = ?) AND (flags & ?) = 0 AND created_at >= ?`,
			id, id, int(ledger.Pending|ledger.VoidPending), first.UnixMicro())
		if err != nil {
			return nil, err
		}
		var outgo90 money.Fen
		since90 := now.AddDate(0, 0, -90).UnixMicro()
		var after money.Fen // net change since first (to walk balances back)
		for rows.Next() {
			var dr, cr string
			var amt money.Fen
			var at int64
			if err := rows.Scan(&dr, &cr, &amt, &at); err != nil {
				rows.Close()
				return nil, err
			}
			m, ok := idx[time.UnixMicro(at).In(yibao.ChinaTime).Format("2006-01")]
			if !ok {
				continue
			}
			switch {
			case cr == id && strings.HasPrefix(dr, "income:"):
				v.Months[m].Income += amt
				after += amt
			case cr == id:
				v.Months[m].Outgo -= amt // money returned
				after += amt
				if at >= since90 {
					outgo90 -= amt
				}
			default:
				v.Months[m].Outgo += amt
				after -= amt
				if at >= since90 {
					outgo90 += amt
				}
			}
		}
		rows.Close()
		bal := v.Balance - after
		for m := range v.Months {
			bal += v.Months[m].Income - v.Months[m].Outgo
			v.Months[m].Balance = bal
		}
		if outgo90 > 0 {
			d := int(int64(v.Balance) * 90 / int64(outgo90))
			v.DaysOfCover = &d
		}
		out = append(out, v)
	}
	return out, nil
}

// AccountStatement is a personal account's statement.
type AccountStatement struct {
	PsnNo   string          `json:"psn_no"`
	Balance money.Fen       `json:"balance"`
	Lines   []StatementLine `json:"lines"` // newest first
}

// StatementLine is one movement of a personal account, named for people.
type StatementLine struct {
	At      time.Time `json:"at"`
	What    string    `json:"what"` // contribution credit, retiree credit, settlement, family mutual aid, reversal, correction
	Ref     string    `json:"ref"`  // run or settlement
	Amount  money.Fen `json:"amount"`
	Balance money.Fen `json:"balance"`
}

// Statement is a personal account's movements, newest first (at most
// limit), with what each was: the caller checks the person may see it.
func (s *Service) Statement(ctx context.Context, psnNo string, limit int) (*AccountStatement, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	id := ledger.PersonalAccount(psnNo).ID
	out := &AccountStatement{PsnNo: psnNo, Lines: []StatementLine{}}
	if acc, err := s.led.Account(ctx, id); err == nil {
		out.Balance = acc.CreditBalance()
	} else if !yibao.IsCode(err, yibao.CodeNotFound) {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT debit_account_id, credit_account_id, amount, code, leg, user_data, created_at, debit_balance, credit_balance FROM ledger_transfers
		WHERE (debit_account_id = ? OR credit_account_id = ?) AND (flags & ?) = 0 ORDER BY seq DESC LIMIT ?`, id, id, int(ledger.Pending|ledger.VoidPending), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var dr, cr, code, leg, ref string
		var amt, dbal, cbal money.Fen
		var at int64
		if err := rows.Scan(&dr, &cr, &amt, &code, &leg, &ref, &at, &dbal, &cbal); err != nil {
			return nil, err
		}
		l := StatementLine{At: fromMicros(at), Ref: ref, Amount: amt, Balance: cbal}
		if dr == id {
			l.Amount, l.Balance = -amt, dbal
		}
		switch {
		case code == "account_crediting" && leg == "retiree":
			l.What = "retiree credit"
		case code == "account_crediting":
			l.What = "contribution credit"
		case code == "contribution":
			l.What = "contribution"
		case leg == "acct_mulaid_pay":
			l.What = "family mutual aid"
		case code == "reversal":
			l.What = "reversal"
		case code == "correction":
			l.What = "correction"
		case strings.HasPrefix(code, "settlement"):
			l.What = "settlement"
		default:
			l.What = code
		}
		out.Lines = append(out.Lines, l)
	}
	return out, rows.Err()
}

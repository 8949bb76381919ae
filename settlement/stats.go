package settlement

import (
	"context"
	"sort"
	"time"

	"yibao"
	"yibao/money"
)

// DayStats is one day of completed settlements.
type DayStats struct {
	Date   string    `json:"date"`
	Bills  int       `json:"bills"`
	Medfee money.Fen `json:"medfee_sumamt"`
	Fund   money.Fen `json:"fund_pay_sumamt"`
	Acct   money.Fen `json:"acct_pay"`
	Cash   money.Fen `json:"psn_cash_pay"`
}

// GroupStats is fund pay by scheme and institution level.
type GroupStats struct {
	Insutype string    `json:"insutype"`
	Level    int       `json:"level"`
	Bills    int       `json:"bills"`
	Medfee   money.Fen `json:"medfee_sumamt"`
	Fund     money.Fen `json:"fund_pay_sumamt"`
}

// Stats is the bureau dashboard's data for a period.
type Stats struct {
	From        string       `json:"from"`
	To          string       `json:"to"`
	Days        []DayStats   `json:"days"`
	BySchemeLvl []GroupStats `json:"by_scheme_level"`
	CrossRegion int          `json:"cross_region_bills"`
	Total       DayStats     `json:"total"`
}

// Statistics sums the completed settlements settled between two dates
// (China time, inclusive), by day and by scheme × level. Administrators.
func (s *Service) Statistics(ctx context.Context, from, to string) (*Stats, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	f, err1 := time.ParseInLocation(time.DateOnly, from, cst)
	t, err2 := time.ParseInLocation(time.DateOnly, to, cst)
	if err1 != nil || err2 != nil || t.Before(f) || t.Sub(f) > 400*24*time.Hour {
		return nil, yibao.FieldError("from", "want from ≤ to, both YYYY-MM-DD, at most 400 days apart")
	}
	rows, err := s.db.Query(ctx, `SELECT s.created_at, s.insutype, v.level, v.cross_status, s.medfee_sumamt, s.fund_pay_sumamt, s.acct_pay, s.psn_cash_pay
		FROM settlements s JOIN visits v ON v.mdtrt_id = s.mdtrt_id
		WHERE s.status = 'completed' AND s.created_at >= ? AND s.created_at < ?`, micros(f), micros(t.AddDate(0, 0, 1)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	st := &Stats{From: from, To: to, Days: []DayStats{}, BySchemeLvl: []GroupStats{}}
	days := map[string]*DayStats{}
	for d := f; !d.After(t); d = d.AddDate(0, 0, 1) {
		k := d.Format(time.DateOnly)
		days[k] = &DayStats{Date: k}
	}
	groups := map[[2]any]*GroupStats{}
	for rows.Next() {
		var at int64
		var insutype, cross string
		var level int
		var medfee, fund, acct, cash money.Fen
		if err := rows.Scan(&at, &insutype, &level, &cross, &medfee, &fund, &acct, &cash); err != nil {
			return nil, err
		}
		day := time.UnixMicro(at).In(cst).Format(time.DateOnly)
		for _, d := range []*DayStats{days[day], &st.Total} {
			if d == nil {
				continue
			}
			d.Bills++
			d.Medfee += medfee
			d.Fund += fund
			d.Acct += acct
			d.Cash += cash
		}
		key := [2]any{insutype, level}
		g := groups[key]
		if g == nil {
			g = &GroupStats{Insutype: insutype, Level: level}
			groups[key] = g
		}
		g.Bills++
		g.Medfee += medfee
		g.Fund += fund
		if cross != "local" {
			st.CrossRegion++
		}
	}
	for _, d := range days {
		st.Days = append(st.Days, *d)
	}
	sort.Slice(st.Days, func(i, j int) bool { return st.Days[i].Date < st.Days[j].Date })
	for _, g := range groups {
		st.BySchemeLvl = append(st.BySchemeLvl, *g)
	}
	sort.Slice(st.BySchemeLvl, func(i, j int) bool {
		a, b := st.BySchemeLvl[i], st.BySchemeLvl[j]
		return a.Insutype < b.Insutype || (a.Insutype == b.Insutype && a.Level < b.Level)
	})
	st.Total.Date = "total"
	return st, rows.Err()
}

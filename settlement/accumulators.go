package settlement

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/money"
	"yibao/policy"
	"yibao/sqlstore"
)

var channelRe = regexp.MustCompile(`^[a-z0-9]{2,20}$`)

// Monthly counters ("fund.month") are stored per month as
// "fund.month@2026-04"; the calculator sees only the current month's.
const monthSep = "@"

// loadAccumulators reads a person's counters for a scheme and year (and
// the month's monthly counters), with the row version for optimistic
// concurrency.
func (s *Service) loadAccumulators(ctx context.Context, q querier, psnNo, insutype string, year int, month string) (policy.Accumulators, int64, bool, error) {
	acc := policy.Accumulators{Counters: map[string]money.Fen{}}
	var counters string
	var ver int64
	err := q.QueryRow(ctx, `SELECT admissions, counters, version FROM accumulators WHERE psn_no = ? AND insutype = ? AND acc_year = ?`,
		psnNo, insutype, year).Scan(&acc.Admissions, &counters, &ver)
	if notFound(err) {
		return acc, 0, false, nil
	}
	if err != nil {
		return acc, 0, false, err
	}
	all := map[string]money.Fen{}
	if err := json.Unmarshal([]byte(counters), &all); err != nil {
		return acc, 0, false, err
	}
	for k, v := range all {
		name, m, monthly := strings.Cut(k, monthSep)
		if !monthly {
			acc.Counters[k] = v
		} else if m == month {
			acc.Counters[name] = v
		}
	}
	return acc, ver, true, nil
}

// saveAccumulators applies a settlement's accumulator change, provided the
// row is still at the version it was calculated on.
func (s *Service) saveAccumulators(ctx context.Context, tx *sqlstore.Tx, psnNo, insutype string, ch *policy.AccumulatorChange, ver int64, exists bool) error {
	var counters string
	var cur int64
	var admissions int
	err := tx.QueryRow(ctx, `SELECT admissions, counters, version FROM accumulators WHERE psn_no = ? AND insutype = ? AND acc_year = ?`,
		psnNo, insutype, ch.Year).Scan(&admissions, &counters, &cur)
	switch {
	case notFound(err):
		if exists {
			return errStale
		}
		counters = "{}"
	case err != nil:
		return err
	case !exists || cur != ver:
		return errStale
	}
	all := map[string]money.Fen{}
	if err := json.Unmarshal([]byte(counters), &all); err != nil {
		return err
	}
	applyDelta(all, ch.Delta, ch.Month, 1)
	admissions += ch.Admissions
	return writeAccumulators(ctx, tx, psnNo, insutype, ch.Year, admissions, all, cur+1, !exists, s.now())
}

func applyDelta(all map[string]money.Fen, delta map[string]money.Fen, month string, sign money.Fen) {
	for k, d := range delta {
		if strings.HasSuffix(k, ".month") {
			k += monthSep + month
		}
		all[k] += sign * d
		if all[k] == 0 {
			delete(all, k)
		}
	}
}

func writeAccumulators(ctx context.Context, tx *sqlstore.Tx, psnNo, insutype string, year, admissions int, all map[string]money.Fen, ver int64, insert bool, now time.Time) error {
	js, _ := json.Marshal(all)
	if insert {
		_, err := tx.Exec(ctx, `INSERT INTO accumulators (psn_no, insutype, acc_year, admissions, counters, version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			psnNo, insutype, year, admissions, string(js), ver, micros(now))
		if sqlstore.IsUniqueViolation(err) {
			return errStale
		}
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE accumulators SET admissions = ?, counters = ?, version = ?, updated_at = ? WHERE psn_no = ? AND insutype = ? AND acc_year = ?`,
		admissions, string(js), ver, micros(now), psnNo, insutype, year)
	return err
}

// restoreAccumulators takes a settlement's change back out (void, reversal).
func (s *Service) restoreAccumulators(ctx context.Context, tx *sqlstore.Tx, st *Settlement) error {
	ch := &st.Result.Accumulators
	var counters string
	var ver int64
	var admissions int
	err := tx.QueryRow(ctx, `SELECT admissions, counters, version FROM accumulators WHERE psn_no = ? AND insutype = ? AND acc_year = ?`,
		st.PsnNo, st.Insutype, ch.Year).Scan(&admissions, &counters, &ver)
	if err != nil {
		return err
	}
	all := map[string]money.Fen{}
	if err := json.Unmarshal([]byte(counters), &all); err != nil {
		return err
	}
	applyDelta(all, ch.Delta, ch.Month, -1)
	return writeAccumulators(ctx, tx, st.PsnNo, st.Insutype, ch.Year, admissions-ch.Admissions, all, ver+1, false, s.now())
}

// AccumulatorView is what a person has used this year and what is left.
type AccumulatorView struct {
	PsnNo         string               `json:"psn_no"`
	Insutype      string               `json:"insutype"`
	Year          int                  `json:"acc_year"`
	Month         string               `json:"month"`
	PolicyVersion string               `json:"policy_version"`
	Admissions    int                  `json:"admissions"`
	Counters      map[string]money.Fen `json:"counters"`
	Account       money.Fen            `json:"acct_balc"`
	Limits        []policy.Limit       `json:"limits"`
}

// Accumulators returns a person's year-to-date figures for each scheme in
// force today, with "deductible left, cap left" from the policy in force.
// Administrators see anyone; an institution sees only persons it has
// treated.
func (s *Service) Accumulators(ctx context.Context, psnNo string) ([]AccumulatorView, error) {
	if err := s.mayReadPerson(ctx, psnNo); err != nil {
		return nil, err
	}
	var birth, category string
	err := s.db.QueryRow(ctx, `SELECT birth_date, category FROM persons WHERE psn_no = ?`, psnNo).Scan(&birth, &category)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "person %s not found", psnNo)
	}
	if err != nil {
		return nil, err
	}
	today := s.today()
	covs, err := s.reg.CoveragesOn(ctx, psnNo, today)
	if err != nil {
		return nil, err
	}
	bal := money.Fen(0)
	if b, err := s.led.Balance(ctx, ledger.PersonalAccount(psnNo).ID); err == nil {
		bal = b.Available
	}
	out := []AccumulatorView{}
	for _, c := range covs {
		pv := policy.Visit{Type: policy.GeneralOutpatient, SettlementDate: today}
		pol, err := s.selectPolicy(ctx, c.Admdvs, &pv)
		if err != nil {
			continue // a layer scheme or a region without policy: nothing to show
		}
		if pol.Schemes[c.Insutype] == nil {
			continue
		}
		year, month, err := pol.AccountingYear(&pv)
		if err != nil {
			return nil, err
		}
		acc, _, _, err := s.loadAccumulators(ctx, s.db, psnNo, c.Insutype, year, month)
		if err != nil {
			return nil, err
		}
		person := policy.Person{Insutype: c.Insutype, Category: category, Age: yibao.AgeOn(birth, today)}
		v := AccumulatorView{PsnNo: psnNo, Insutype: c.Insutype, Year: year, Month: month, PolicyVersion: pol.Version,
			Admissions: acc.Admissions, Counters: acc.Counters, Account: bal, Limits: pol.Limits(person, acc)}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Insutype < out[j].Insutype })
	return out, nil
}

// mayReadPerson: administrators read anyone; institution staff and keys
// only persons with a visit at their institution.
func (s *Service) mayReadPerson(ctx context.Context, psnNo string) error {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return err
	}
	if p.IsAdmin() {
		return nil
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM visits WHERE psn_no = ? AND fixmedins_code = ?`, psnNo, p.Institution).Scan(&n); err != nil {
		return err
	}
	if n == 0 || p.Institution == "" {
		return yibao.Errorf(yibao.CodeNotFound, "person %s not found among your patients", psnNo)
	}
	return nil
}

// History lists a person's settlements newest first (an institution sees
// only its own).
func (s *Service) History(ctx context.Context, psnNo string, limit int) ([]Settlement, error) {
	if err := s.mayReadPerson(ctx, psnNo); err != nil {
		return nil, err
	}
	p := yibao.PrincipalFrom(ctx)
	q, args := `SELECT `+settlementCols+` FROM settlements WHERE psn_no = ?`, []any{psnNo}
	if !p.IsAdmin() {
		q += ` AND fixmedins_code = ?`
		args = append(args, p.Institution)
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY created_at DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Settlement{}
	for rows.Next() {
		st, err := scanSettlement(rows, true)
		if err != nil {
			return nil, err
		}
		out = append(out, *st)
	}
	return out, rows.Err()
}

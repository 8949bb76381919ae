package settlement

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"yibao"
	"yibao/money"
	"yibao/policy"
)

// ReplayRow is the fund impact of a policy version on one scheme and
// institution level over the replayed bills.
type ReplayRow struct {
	Insutype     string    `json:"insutype"`
	Level        int       `json:"level"`
	Bills        int       `json:"bills"`
	Medfee       money.Fen `json:"medfee_sumamt"`
	FundBefore   money.Fen `json:"fund_pay_before"`
	FundAfter    money.Fen `json:"fund_pay_after"`
	FundDelta    money.Fen `json:"fund_pay_delta"`
	PersonBefore money.Fen `json:"psn_part_before"`
	PersonAfter  money.Fen `json:"psn_part_after"`
}

// ReplayReport compares a policy version with what was actually paid.
type ReplayReport struct {
	Admdvs  string      `json:"admdvs"`
	Version string      `json:"version"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	Bills   int         `json:"bills"`
	Failed  int         `json:"failed"` // bills the version cannot settle (e.g. a scheme it lacks)
	Errors  []string    `json:"errors,omitempty"`
	Rows    []ReplayRow `json:"rows"`
	Total   ReplayRow   `json:"total"`
	Elapsed string      `json:"elapsed"`
}

// maxReplay bounds one synchronous replay.
const maxReplay = 200_000

// ReplayPolicy settles again, under the given version (a draft usually),
// every completed settlement of the region whose settlement date is in
// [from, to], each with the inputs it was settled with (the person's
// accumulators as they were then), and reports the fund impact by scheme
// and institution level. Nothing is written. Administrators only.
func (s *Service) ReplayPolicy(ctx context.Context, admdvs, version, from, to string) (*ReplayReport, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if !validDate(from) || !validDate(to) || to < from {
		return nil, yibao.FieldError("from", "want from ≤ to, both YYYY-MM-DD")
	}
	pv, err := s.PolicyVersion(ctx, admdvs, version)
	if err != nil {
		return nil, err
	}
	pol, err := policy.LoadPolicy(bytes.NewReader(pv.Doc))
	if err != nil {
		return nil, err
	}
	// Old bills fall outside a new version's dates; the replay asks "what
	// if these rules had applied", so the dates are opened up.
	open := *pol
	open.EffectiveFrom, open.EffectiveTo = "0001-01-01", ""
	start := time.Now()
	fromT, _ := time.ParseInLocation(time.DateOnly, from, cst)
	toT, _ := time.ParseInLocation(time.DateOnly, to, cst)
	rows, err := s.db.Query(ctx, `SELECT input, result FROM settlements WHERE insu_admdvs = ? AND status = 'completed'
		AND created_at >= ? AND created_at < ? ORDER BY created_at LIMIT `+strconv.Itoa(maxReplay+1),
		admdvs, micros(fromT), micros(toT.AddDate(0, 0, 1)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	rep := &ReplayReport{Admdvs: admdvs, Version: version, From: from, To: to}
	byKey := map[[2]string]*ReplayRow{}
	for rows.Next() {
		var inJS, resJS string
		if err := rows.Scan(&inJS, &resJS); err != nil {
			return nil, err
		}
		rep.Bills++
		if rep.Bills > maxReplay {
			return nil, yibao.Errorf(yibao.CodeInvalid, "more than %d bills in %s…%s; replay a shorter period", maxReplay, from, to)
		}
		var in policy.Input
		var old policy.Result
		if err := json.Unmarshal([]byte(inJS), &in); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(resJS), &old); err != nil {
			return nil, err
		}
		res, err := policy.Calc(&open, &in, policy.Options{})
		if err != nil {
			rep.Failed++
			if len(rep.Errors) < 20 {
				rep.Errors = append(rep.Errors, yibao.ErrorMessage(err))
			}
			continue
		}
		key := [2]string{in.Person.Insutype, strconv.Itoa(in.Visit.Level)}
		r := byKey[key]
		if r == nil {
			r = &ReplayRow{Insutype: in.Person.Insutype, Level: in.Visit.Level}
			byKey[key] = r
		}
		for _, x := range []*ReplayRow{r, &rep.Total} {
			x.Bills++
			x.Medfee += old.SetlInfo.MedfeeSumamt
			x.FundBefore += old.SetlInfo.FundPaySumamt
			x.FundAfter += res.SetlInfo.FundPaySumamt
			x.FundDelta += res.SetlInfo.FundPaySumamt - old.SetlInfo.FundPaySumamt
			x.PersonBefore += old.SetlInfo.PsnPartAmt
			x.PersonAfter += res.SetlInfo.PsnPartAmt
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rep.Rows = []ReplayRow{}
	for _, r := range byKey {
		rep.Rows = append(rep.Rows, *r)
	}
	sort.Slice(rep.Rows, func(i, j int) bool {
		a, b := rep.Rows[i], rep.Rows[j]
		return a.Insutype < b.Insutype || (a.Insutype == b.Insutype && a.Level < b.Level)
	})
	rep.Total.Insutype = "*"
	rep.Elapsed = time.Since(start).Round(time.Millisecond).String()
	return rep, nil
}

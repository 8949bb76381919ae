package registry

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"time"

	"yibao"
	"yibao/sqlstore"
)

// Filing kinds (备案类别). The insured region keeps them; the treating
// region reads them through the hub and the calculator applies the
// insured region's rule for the status the kind maps to (FilingStatus).
const (
	FilingLongTerm  = "long_term" // 异地长期居住 (retired abroad, resident or posted worker)
	FilingReferred  = "referred"  // 转诊转院 (a referral by a designated hospital)
	FilingTemporary = "temporary" // 临时外出就医
	FilingEmergency = "emergency" // 急诊抢救 (filed afterwards)
)

// Filing states.
const (
	FilingActive  = "active"
	FilingRevoked = "revoked"
)

// Filing is one cross-region filing (备案) of an insured person.
type Filing struct {
	FilingID      string     `json:"filing_id"`
	PsnNo         string     `json:"psn_no"`
	Kind          string     `json:"kind"`
	DestAdmdvs    string     `json:"dest_admdvs"`              // treating region: a city (320100) or a province (320000)
	FixmedinsCode string     `json:"fixmedins_code,omitempty"` // a referral's receiving institution
	BeginDate     string     `json:"begin_date"`
	EndDate       string     `json:"end_date,omitempty"` // empty: open-ended
	Reason        string     `json:"reason,omitempty"`
	Status        string     `json:"status"`
	CreatedBy     string     `json:"created_by"`
	CreatedAt     time.Time  `json:"created_at"`
	RevokedBy     string     `json:"revoked_by,omitempty"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
}

// FilingStatus maps a filing kind to the calculator's cross-region status
// (policy.LongTerm, policy.Referred, policy.Temporary); an emergency counts
// as a referral. No filing is "unregistered".
func FilingStatus(kind string) string {
	switch kind {
	case FilingLongTerm:
		return "long_term"
	case FilingReferred, FilingEmergency:
		return "referred"
	case FilingTemporary:
		return "temporary"
	}
	return "unregistered"
}

// Covers reports whether the filing applies to treatment in region admdvs
// at institution fixmedins on date.
func (f *Filing) Covers(admdvs, fixmedins, date string) bool {
	if f.Status != FilingActive || date < f.BeginDate || (f.EndDate != "" && date > f.EndDate) {
		return false
	}
	if f.FixmedinsCode != "" && f.FixmedinsCode != fixmedins {
		return false
	}
	if f.DestAdmdvs == admdvs {
		return true
	}
	return f.DestAdmdvs[2:] == "0000" && f.DestAdmdvs[:2] == admdvs[:2] // the whole province
}

var fixmedinsRe = regexp.MustCompile(`^[HP][0-9]{11}$`)

// filingRank orders kinds when several filings cover a visit: the one
// most favourable to the insured person wins.
var filingRank = map[string]int{FilingLongTerm: 4, FilingReferred: 3, FilingEmergency: 2, FilingTemporary: 1}

// CreateFiling records a filing for an insured person of this node. Only a
// bureau administrator files (the person applies through the bureau's
// channels). A filing for treatment inside the person's own region is
// refused. Errors: invalid_argument, not_found, permission_denied.
func (s *Service) CreateFiling(ctx context.Context, f Filing) (*Filing, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if _, ok := filingRank[f.Kind]; !ok {
		return nil, yibao.FieldError("kind", "want long_term, referred, temporary or emergency")
	}
	if !yibao.ValidAdmdvs(f.DestAdmdvs) {
		return nil, yibao.FieldError("dest_admdvs", "want a 6-digit division code of the treating region")
	}
	if !yibao.ValidDate(f.BeginDate) {
		return nil, yibao.FieldError("begin_date", "want a date YYYY-MM-DD")
	}
	if f.EndDate != "" && (!yibao.ValidDate(f.EndDate) || f.EndDate < f.BeginDate) {
		return nil, yibao.FieldError("end_date", "want a date YYYY-MM-DD on or after begin_date, or none")
	}
	if f.Kind == FilingTemporary && f.EndDate == "" {
		return nil, yibao.FieldError("end_date", "a temporary filing needs an end date")
	}
	if len(f.Reason) > 200 {
		return nil, yibao.FieldError("reason", "at most 200 bytes")
	}
	if f.FixmedinsCode != "" && !fixmedinsRe.MatchString(f.FixmedinsCode) {
		return nil, yibao.FieldError("fixmedins_code", "an institution code: H or P and 11 digits")
	}
	var admdvs string
	err := s.db.QueryRow(ctx, `SELECT admdvs FROM persons WHERE psn_no = ?`, f.PsnNo).Scan(&admdvs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "person %s not found", f.PsnNo)
	}
	if err != nil {
		return nil, err
	}
	if s.Keeps != nil && !s.Keeps(admdvs) {
		return nil, yibao.Errorf(yibao.CodePrecondition, "person %s is insured in region %s, kept by another node: file there", f.PsnNo, admdvs)
	}
	if f.DestAdmdvs == admdvs {
		return nil, yibao.FieldError("dest_admdvs", "%s is the person's own region; a filing is for treatment elsewhere", admdvs)
	}
	p := yibao.PrincipalFrom(ctx)
	now := s.now().UTC().Truncate(time.Microsecond)
	f.FilingID, f.Status, f.CreatedBy, f.CreatedAt, f.RevokedBy, f.RevokedAt = newID("FL"), FilingActive, p.ID(), now, "", nil
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO filings (filing_id, psn_no, kind, dest_admdvs, fixmedins_code, begin_date, end_date, reason, status, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, f.FilingID, f.PsnNo, f.Kind, f.DestAdmdvs, f.FixmedinsCode, f.BeginDate, f.EndDate, f.Reason,
			f.Status, f.CreatedBy, micros(now))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// RevokeFiling ends a filing (撤销备案). Revoking again returns it.
func (s *Service) RevokeFiling(ctx context.Context, id string) (*Filing, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	who := yibao.PrincipalFrom(ctx).ID()
	now := s.now()
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE filings SET status = ?, revoked_by = ?, revoked_at = ? WHERE filing_id = ? AND status = ?`,
			FilingRevoked, who, micros(now), id, FilingActive)
		return err
	})
	if err != nil {
		return nil, err
	}
	fs, err := s.filings(ctx, `filing_id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, yibao.Errorf(yibao.CodeNotFound, "filing %s not found", id)
	}
	return &fs[0], nil
}

// Filings lists a person's filings, newest first. Administrators only:
// the treating region sees the one that applies through FilingFor.
func (s *Service) Filings(ctx context.Context, psnNo string) ([]Filing, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM persons WHERE psn_no = ?`, psnNo).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, yibao.Errorf(yibao.CodeNotFound, "person %s not found", psnNo)
	}
	return s.filings(ctx, `psn_no = ?`, psnNo)
}

// FilingFor returns the filing that applies to treatment of psnNo in
// region admdvs at institution fixmedins on date, or nil if none does.
func (s *Service) FilingFor(ctx context.Context, psnNo, admdvs, fixmedins, date string) (*Filing, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	fs, err := s.filings(ctx, `psn_no = ? AND status = 'active'`, psnNo)
	if err != nil {
		return nil, err
	}
	var best *Filing
	for i := range fs {
		if fs[i].Covers(admdvs, fixmedins, date) && (best == nil || filingRank[fs[i].Kind] > filingRank[best.Kind]) {
			best = &fs[i]
		}
	}
	return best, nil
}

func (s *Service) filings(ctx context.Context, where string, args ...any) ([]Filing, error) {
	rows, err := s.db.Query(ctx, `SELECT filing_id, psn_no, kind, dest_admdvs, fixmedins_code, begin_date, end_date, reason, status,
		created_by, created_at, revoked_by, revoked_at FROM filings WHERE `+where+` ORDER BY created_at DESC, filing_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Filing{}
	for rows.Next() {
		var f Filing
		var created, revoked int64
		if err := rows.Scan(&f.FilingID, &f.PsnNo, &f.Kind, &f.DestAdmdvs, &f.FixmedinsCode, &f.BeginDate, &f.EndDate, &f.Reason, &f.Status,
			&f.CreatedBy, &created, &f.RevokedBy, &revoked); err != nil {
			return nil, err
		}
		f.CreatedAt = time.UnixMicro(created).UTC()
		if revoked != 0 {
			t := time.UnixMicro(revoked).UTC()
			f.RevokedAt = &t
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// ImportGuest keeps a copy of a person insured by another region's node,
// treated here: the region (registered if missing), the person (added
// once; the insured node stays the source) and their coverage periods
// (replaced by the insured node's current ones). System principal only.
func (s *Service) ImportGuest(ctx context.Context, region yibao.Region, p yibao.Person, covs []yibao.Coverage) error {
	if pr := yibao.PrincipalFrom(ctx); pr == nil || pr.Kind != yibao.PrincipalSystem {
		return yibao.Errorf(yibao.CodeForbidden, "only the platform imports guests")
	}
	if err := region.Validate(); err != nil {
		return err
	}
	if err := p.Validate(s.today()); err != nil {
		return err
	}
	for i := range covs {
		if covs[i].PsnNo != p.PsnNo || covs[i].Admdvs != p.Admdvs && covs[i].Admdvs[:2] != p.Admdvs[:2] {
			return yibao.FieldError("coverages", "coverage %s is not of person %s", covs[i].ID, p.PsnNo)
		}
		if err := covs[i].Validate(); err != nil {
			return err
		}
	}
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if ok, err := s.regionExists(ctx, tx, region.Admdvs); err != nil {
			return err
		} else if !ok {
			if _, err := tx.Exec(ctx, `INSERT INTO regions (admdvs, name, parent, created_at) VALUES (?, ?, ?, ?)`,
				region.Admdvs, region.Name, nullable(region.Parent), micros(s.now())); err != nil {
				return err
			}
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM persons WHERE psn_no = ?`, p.PsnNo).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if err := s.insertPerson(ctx, tx, &p); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM coverages WHERE psn_no = ?`, p.PsnNo); err != nil {
			return err
		}
		for i := range covs {
			if err := s.insertCoverage(ctx, tx, &covs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

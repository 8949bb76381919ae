package registry

import (
	"context"
	"database/sql"

	"yibao"
	"yibao/sqlstore"
)

// CreateInstitution registers a designated hospital or pharmacy. Errors:
// invalid_argument (incl. unknown region), conflict, permission_denied.
func (s *Service) CreateInstitution(ctx context.Context, in yibao.Institution) (*yibao.Institution, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return s.insertInstitution(ctx, tx, &in) })
	if err != nil {
		return nil, err
	}
	return &in, nil
}

func (s *Service) insertInstitution(ctx context.Context, tx *sqlstore.Tx, in *yibao.Institution) error {
	if ok, err := s.regionExists(ctx, tx, in.Admdvs); err != nil {
		return err
	} else if !ok {
		return yibao.FieldError("admdvs", "region %s is not registered", in.Admdvs)
	}
	now := s.now().UTC().Truncate(1e3)
	in.CreatedAt, in.UpdatedAt = now, now
	_, err := tx.Exec(ctx, `INSERT INTO institutions (fixmedins_code, name, kind, level, admdvs, contract_status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, in.Code, in.Name, string(in.Kind), in.Level, in.Admdvs, string(in.ContractStatus), micros(now), micros(now))
	if sqlstore.IsUniqueViolation(err) {
		return yibao.Errorf(yibao.CodeConflict, "institution %s is already registered", in.Code)
	}
	if err != nil {
		return err
	}
	if s.OnInstitutionCreated != nil {
		return s.OnInstitutionCreated(ctx, tx, in)
	}
	return nil
}

// SetContractStatus suspends, reinstates or terminates an institution's
// agreement. Errors: invalid_argument, not_found, permission_denied.
func (s *Service) SetContractStatus(ctx context.Context, code string, status yibao.ContractStatus) (*yibao.Institution, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	switch status {
	case yibao.ContractActive, yibao.ContractSuspended, yibao.ContractTerminated:
	default:
		return nil, yibao.FieldError("contract_status", "must be active, suspended or terminated")
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE institutions SET contract_status = ?, updated_at = ? WHERE fixmedins_code = ?`,
			string(status), micros(s.now()), code)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return yibao.Errorf(yibao.CodeNotFound, "institution %s not found", code)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Institution(ctx, code)
}

const institutionCols = `fixmedins_code, name, kind, level, admdvs, contract_status, created_at, updated_at`

func scanInstitution(sc interface{ Scan(...any) error }) (*yibao.Institution, error) {
	var in yibao.Institution
	var created, updated int64
	if err := sc.Scan(&in.Code, &in.Name, &in.Kind, &in.Level, &in.Admdvs, &in.ContractStatus, &created, &updated); err != nil {
		return nil, err
	}
	in.CreatedAt, in.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &in, nil
}

// Institution returns one institution. Staff and keys of an institution
// may read only their own. Errors: not_found, permission_denied.
func (s *Service) Institution(ctx context.Context, code string) (*yibao.Institution, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.ActsFor(code) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "you may only read your own institution")
	}
	in, err := scanInstitution(s.db.QueryRow(ctx, `SELECT `+institutionCols+` FROM institutions WHERE fixmedins_code = ?`, code))
	if err == sql.ErrNoRows {
		return nil, yibao.Errorf(yibao.CodeNotFound, "institution %s not found", code)
	}
	return in, err
}

// InstitutionFilter narrows an institution listing.
type InstitutionFilter struct {
	Admdvs string
	Kind   yibao.InstitutionKind
	After  string
	Limit  int
}

// Institutions lists institutions in code order; administrators see all,
// institution principals only their own.
func (s *Service) Institutions(ctx context.Context, f InstitutionFilter) (*Page[yibao.Institution], error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	limit := clampLimit(f.Limit)
	q := `SELECT ` + institutionCols + ` FROM institutions WHERE fixmedins_code > ?`
	args := []any{f.After}
	if !p.IsAdmin() {
		q += ` AND fixmedins_code = ?`
		args = append(args, p.Institution)
	}
	if f.Admdvs != "" {
		q += ` AND admdvs = ?`
		args = append(args, f.Admdvs)
	}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, string(f.Kind))
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY fixmedins_code LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, err
	}
	return readPage(rows, limit, scanInstitution, func(x *yibao.Institution) string { return x.Code })
}

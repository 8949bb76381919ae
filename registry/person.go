package registry

import (
	"context"
	"database/sql"
	"strings"

	"yibao"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// Blind-index domains: one per field, so equal values in different fields
// never share a token.
const (
	idxIDNumber = "person.id_number"
	idxName     = "person.name"
	idxPhone    = "person.phone"
)

func (s *Service) blind(domain, value string) []byte {
	return gmcrypto.BlindIndex(s.indexKey, domain, []byte(value))
}

func aad(psnNo, field string) []byte { return []byte("person/" + psnNo + "/" + field) }

// CreatePerson registers an insured person. ID number, name and phone are
// sealed with SM4-GCM (bound to the psn_no) and indexed by SM3-HMAC.
// Errors: invalid_argument, conflict (psn_no or ID number taken),
// permission_denied.
func (s *Service) CreatePerson(ctx context.Context, p yibao.Person) (*yibao.Person, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := p.Validate(s.today()); err != nil {
		return nil, err
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		return s.insertPerson(ctx, tx, &p)
	})
	if err != nil {
		return nil, err
	}
	return s.masked(p), nil
}

// insertPerson writes a validated person inside tx.
func (s *Service) insertPerson(ctx context.Context, tx *sqlstore.Tx, p *yibao.Person) error {
	if ok, err := s.regionExists(ctx, tx, p.Admdvs); err != nil {
		return err
	} else if !ok {
		return yibao.FieldError("admdvs", "region %s is not registered", p.Admdvs)
	}
	idIndex := s.blind(idxIDNumber, p.IDNumber)
	// Checked with a query, not left to the unique index: on PostgreSQL a
	// failed statement aborts the whole transaction, and an import wants to
	// report every bad line.
	var other string
	switch err := tx.QueryRow(ctx, `SELECT psn_no FROM persons WHERE id_index = ?`, idIndex).Scan(&other); {
	case err == nil:
		return yibao.Errorf(yibao.CodeConflict, "a person with ID number %s is already registered (%s)", yibao.MaskID(p.IDNumber), other)
	case !notFound(err):
		return err
	}
	now := s.now().UTC().Truncate(1e3)
	p.CreatedAt, p.UpdatedAt = now, now
	p.IDMasked, p.NameMask = yibao.MaskID(p.IDNumber), yibao.MaskName(p.Name)
	idC, err := s.keys.Seal([]byte(p.IDNumber), aad(p.PsnNo, "id_number"))
	if err != nil {
		return err
	}
	nameC, err := s.keys.Seal([]byte(p.Name), aad(p.PsnNo, "name"))
	if err != nil {
		return err
	}
	var phoneC, phoneI []byte
	var phoneM any
	if p.Phone != "" {
		if phoneC, err = s.keys.Seal([]byte(p.Phone), aad(p.PsnNo, "phone")); err != nil {
			return err
		}
		phoneI = s.blind(idxPhone, p.Phone)
		p.PhoneMask = yibao.MaskPhone(p.Phone)
		phoneM = p.PhoneMask
	}
	_, err = tx.Exec(ctx, `INSERT INTO persons (psn_no, id_cipher, id_index, id_masked, name_cipher, name_index, name_masked,
		phone_cipher, phone_index, phone_masked, birth_date, gender, category, admdvs, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.PsnNo, idC, idIndex, p.IDMasked, nameC, s.blind(idxName, p.Name), p.NameMask,
		phoneC, phoneI, phoneM, p.BirthDate, string(p.Gender), string(p.Category), p.Admdvs, micros(now), micros(now))
	if sqlstore.IsUniqueViolation(err) {
		var n int
		if e := tx.QueryRow(ctx, `SELECT COUNT(*) FROM persons WHERE psn_no = ?`, p.PsnNo).Scan(&n); e == nil && n > 0 {
			return yibao.Errorf(yibao.CodeConflict, "person %s is already registered", p.PsnNo)
		}
		return yibao.Errorf(yibao.CodeConflict, "a person with ID number %s is already registered", p.IDMasked)
	}
	if err != nil {
		return err
	}
	if s.OnPersonCreated != nil {
		return s.OnPersonCreated(ctx, tx, p)
	}
	return nil
}

// masked returns a copy of p without clear personal data.
func (s *Service) masked(p yibao.Person) *yibao.Person {
	p.IDNumber, p.Name, p.Phone = "", "", ""
	return &p
}

const personCols = `psn_no, id_cipher, id_masked, name_cipher, name_masked, phone_cipher, COALESCE(phone_masked, ''),
	birth_date, gender, category, admdvs, created_at, updated_at`

// scanPerson reads one row of personCols, decrypting when reveal is set.
func (s *Service) scanPerson(sc interface{ Scan(...any) error }, reveal bool) (*yibao.Person, error) {
	var p yibao.Person
	var idC, nameC, phoneC []byte
	var created, updated int64
	if err := sc.Scan(&p.PsnNo, &idC, &p.IDMasked, &nameC, &p.NameMask, &phoneC, &p.PhoneMask,
		&p.BirthDate, &p.Gender, &p.Category, &p.Admdvs, &created, &updated); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	if reveal {
		for _, f := range []struct {
			c    []byte
			dst  *string
			name string
		}{{idC, &p.IDNumber, "id_number"}, {nameC, &p.Name, "name"}, {phoneC, &p.Phone, "phone"}} {
			if f.c == nil {
				continue
			}
			b, err := s.keys.Open(f.c, aad(p.PsnNo, f.name))
			if err != nil {
				return nil, yibao.Wrap(yibao.CodeInternal, err, "personal data could not be decrypted")
			}
			*f.dst = string(b)
		}
	}
	return &p, nil
}

// Person returns one person, masked unless reveal is set. Only
// administrators may read persons by number; institutions use
// LookupPerson with a credential the patient presents. Errors: not_found,
// permission_denied.
func (s *Service) Person(ctx context.Context, psnNo string, reveal bool) (*yibao.Person, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	p, err := s.scanPerson(s.db.QueryRow(ctx, `SELECT `+personCols+` FROM persons WHERE psn_no = ?`, psnNo), reveal)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "person %s not found", psnNo)
	}
	return p, err
}

// PersonFilter narrows a person listing.
type PersonFilter struct {
	Admdvs   string
	Category yibao.PersonCategory
	Name     string // exact full name, matched through the blind index
	Phone    string // exact phone, matched through the blind index
	After    string // cursor: psn_no of the last item of the previous page
	Limit    int
}

// Persons lists persons (masked) in psn_no order. Administrators only.
func (s *Service) Persons(ctx context.Context, f PersonFilter) (*Page[yibao.Person], error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	limit := clampLimit(f.Limit)
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Admdvs != "" {
		add("admdvs = ?", f.Admdvs)
	}
	if f.Category != "" {
		add("category = ?", string(f.Category))
	}
	if f.Name != "" {
		add("name_index = ?", s.blind(idxName, strings.TrimSpace(f.Name)))
	}
	if f.Phone != "" {
		add("phone_index = ?", s.blind(idxPhone, strings.TrimSpace(f.Phone)))
	}
	if f.After != "" {
		add("psn_no > ?", f.After)
	}
	q := `SELECT ` + personCols + ` FROM persons`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY psn_no LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return readPage(rows, limit, func(sc interface{ Scan(...any) error }) (*yibao.Person, error) { return s.scanPerson(sc, false) }, func(x *yibao.Person) string { return x.PsnNo })
}

// PersonInfo is what an institution learns about a patient who presents a
// credential: the masked person and the coverage in force today.
type PersonInfo struct {
	Person    yibao.Person     `json:"person"`
	Coverages []yibao.Coverage `json:"coverages"`
}

// LookupPerson finds a person by the ID number the patient presents, as a
// counter does before registering a visit. Any authenticated staff member
// may call it; the answer is masked. Errors: invalid_argument, not_found.
func (s *Service) LookupPerson(ctx context.Context, idNumber string) (*PersonInfo, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	id, err := yibao.ParseIDNumber(idNumber, s.today())
	if err != nil {
		return nil, err
	}
	p, err := s.scanPerson(s.db.QueryRow(ctx, `SELECT `+personCols+` FROM persons WHERE id_index = ?`,
		s.blind(idxIDNumber, id.Number)), false)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "no insured person with ID number %s", yibao.MaskID(id.Number))
	}
	if err != nil {
		return nil, err
	}
	covs, err := s.coverages(ctx, s.db, p.PsnNo, s.today().Format(yibao.DateLayout))
	if err != nil {
		return nil, err
	}
	return &PersonInfo{Person: *p, Coverages: covs}, nil
}

// PersonByIDNumber returns the psn_no registered for an ID number, for
// services that resolve credentials (e-certificate activation).
func (s *Service) PersonByIDNumber(ctx context.Context, idNumber string) (string, error) {
	var psn string
	err := s.db.QueryRow(ctx, `SELECT psn_no FROM persons WHERE id_index = ?`, s.blind(idxIDNumber, strings.ToUpper(idNumber))).Scan(&psn)
	if err == sql.ErrNoRows {
		return "", yibao.Errorf(yibao.CodeNotFound, "no insured person with that ID number")
	}
	return psn, err
}

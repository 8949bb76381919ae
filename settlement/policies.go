package settlement

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/gmcrypto"
	"yibao/policy"
	"yibao/sqlstore"
)

// Policy version states. A version is drafted by one administrator,
// submitted, and published only when a second administrator approves it.
const (
	PolicyDraft     = "draft"
	PolicySubmitted = "submitted"
	PolicyPublished = "published"
	PolicyRejected  = "rejected"
)

// PolicyVersion is one stored policy version.
type PolicyVersion struct {
	Admdvs        string          `json:"admdvs"`
	Version       string          `json:"version"`
	Name          string          `json:"name,omitempty"`
	EffectiveFrom string          `json:"effective_from"`
	EffectiveTo   string          `json:"effective_to,omitempty"`
	Status        string          `json:"status"`
	CreatedBy     string          `json:"created_by"`
	SubmittedBy   string          `json:"submitted_by,omitempty"`
	DecidedBy     string          `json:"decided_by,omitempty"`
	Note          string          `json:"note,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	Doc           json.RawMessage `json:"policy,omitempty"`
}

const policyCols = `admdvs, version, effective_from, effective_to, status, doc, created_by, submitted_by, decided_by, note, created_at, updated_at`

func scanPolicy(sc interface{ Scan(...any) error }, withDoc bool) (*PolicyVersion, error) {
	var v PolicyVersion
	var doc string
	var c, u int64
	if err := sc.Scan(&v.Admdvs, &v.Version, &v.EffectiveFrom, &v.EffectiveTo, &v.Status, &doc, &v.CreatedBy, &v.SubmittedBy,
		&v.DecidedBy, &v.Note, &c, &u); err != nil {
		return nil, err
	}
	v.CreatedAt, v.UpdatedAt = fromMicros(c), fromMicros(u)
	var head struct {
		Name string `json:"name"`
	}
	json.Unmarshal([]byte(doc), &head)
	v.Name = head.Name
	if withDoc {
		v.Doc = json.RawMessage(doc)
	}
	return &v, nil
}

// DraftPolicy stores a policy version as a draft after validating it (the
// errors name the field). A draft of the same version may be replaced
// until it is submitted. Administrators only.
func (s *Service) DraftPolicy(ctx context.Context, doc []byte) (*PolicyVersion, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	p, err := policy.LoadPolicy(bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	who := yibao.PrincipalFrom(ctx).ID()
	now := micros(s.now())
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		return nil, yibao.Wrap(yibao.CodeMalformed, err, "bad policy JSON")
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM policies WHERE admdvs = ? AND version = ?`, p.Admdvs, p.Version).Scan(&status)
		switch {
		case notFound(err):
			_, err = tx.Exec(ctx, `INSERT INTO policies (`+policyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, '', '', '', ?, ?)`,
				p.Admdvs, p.Version, p.EffectiveFrom, p.EffectiveTo, PolicyDraft, compact.String(), who, now, now)
			return err
		case err != nil:
			return err
		case status != PolicyDraft:
			return yibao.Errorf(yibao.CodeConflict, "policy %s/%s is %s; drafts only replace drafts — pick a new version", p.Admdvs, p.Version, status)
		}
		_, err = tx.Exec(ctx, `UPDATE policies SET effective_from = ?, effective_to = ?, doc = ?, created_by = ?, updated_at = ? WHERE admdvs = ? AND version = ?`,
			p.EffectiveFrom, p.EffectiveTo, compact.String(), who, now, p.Admdvs, p.Version)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.PolicyVersion(ctx, p.Admdvs, p.Version)
}

// SubmitPolicy asks for approval of a draft.
func (s *Service) SubmitPolicy(ctx context.Context, admdvs, version string) (*PolicyVersion, error) {
	return s.movePolicy(ctx, admdvs, version, PolicyDraft, PolicySubmitted, "")
}

// ApprovePolicy publishes a submitted version. The approver must be a
// different administrator from the one who drafted and submitted it, and
// the version's dates must not overlap another published version of the
// region.
func (s *Service) ApprovePolicy(ctx context.Context, admdvs, version, note string) (*PolicyVersion, error) {
	v, err := s.movePolicy(ctx, admdvs, version, PolicySubmitted, PolicyPublished, note)
	if err == nil {
		s.forgetPolicies()
	}
	return v, err
}

// RejectPolicy sends a submitted version back with a note; it can then
// only be replaced by a new version.
func (s *Service) RejectPolicy(ctx context.Context, admdvs, version, note string) (*PolicyVersion, error) {
	return s.movePolicy(ctx, admdvs, version, PolicySubmitted, PolicyRejected, note)
}

func (s *Service) movePolicy(ctx context.Context, admdvs, version, from, to, note string) (*PolicyVersion, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	who := yibao.PrincipalFrom(ctx).ID()
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		v, err := scanPolicy(tx.QueryRow(ctx, `SELECT `+policyCols+` FROM policies WHERE admdvs = ? AND version = ?`, admdvs, version), false)
		if notFound(err) {
			return yibao.Errorf(yibao.CodeNotFound, "policy %s/%s not found", admdvs, version)
		}
		if err != nil {
			return err
		}
		if v.Status != from {
			return yibao.Errorf(yibao.CodePrecondition, "policy %s/%s is %s, not %s", admdvs, version, v.Status, from)
		}
		set, args := `status = ?, updated_at = ?`, []any{to, micros(s.now())}
		switch to {
		case PolicySubmitted:
			set += `, submitted_by = ?`
			args = append(args, who)
		case PolicyPublished, PolicyRejected:
			if who == v.CreatedBy || who == v.SubmittedBy {
				return yibao.Errorf(yibao.CodeForbidden, "a second administrator must decide: %s drafted or submitted this version", who)
			}
			set += `, decided_by = ?, note = ?`
			args = append(args, who, note)
		}
		if to == PolicyPublished {
			var clash string
			err := tx.QueryRow(ctx, `SELECT version FROM policies WHERE admdvs = ? AND status = 'published' AND version <> ?
				AND effective_from <= ? AND (effective_to = '' OR effective_to >= ?)`, admdvs, version,
				orMax(v.EffectiveTo), v.EffectiveFrom).Scan(&clash)
			if err == nil {
				return yibao.Errorf(yibao.CodeConflict, "policy %s/%s overlaps the published version %s; end that one first", admdvs, version, clash)
			}
			if !notFound(err) {
				return err
			}
		}
		if _, err = tx.Exec(ctx, `UPDATE policies SET `+set+` WHERE admdvs = ? AND version = ?`, append(args, admdvs, version)...); err != nil {
			return err
		}
		// The audit trail keeps each move with the SM3 of the exact document.
		var doc string
		if err := tx.QueryRow(ctx, `SELECT doc FROM policies WHERE admdvs = ? AND version = ?`, admdvs, version).Scan(&doc); err != nil {
			return err
		}
		sum := gmcrypto.SM3([]byte(doc))
		return s.Audit.Record(ctx, tx, audit.Entry{ID: "policy:" + admdvs + ":" + version + ":" + to, Kind: audit.KindPolicy,
			At: audit.Stamp(s.now()), Actor: who, Subject: admdvs + "/" + version, Data: map[string]any{"admdvs": admdvs, "version": version,
				"from": from, "to": to, "effective_from": v.EffectiveFrom, "effective_to": v.EffectiveTo, "doc_sm3": hex.EncodeToString(sum[:]), "note": note}})
	})
	if err != nil {
		return nil, err
	}
	return s.PolicyVersion(ctx, admdvs, version)
}

func orMax(date string) string {
	if date == "" {
		return "9999-12-31"
	}
	return date
}

// BootstrapPolicy publishes a version directly, for the demo and a new
// installation's first policies; it refuses a version that exists or
// overlaps a published one. The system principal is recorded as both author and
// approver.
func (s *Service) BootstrapPolicy(ctx context.Context, doc []byte) (*PolicyVersion, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Kind != yibao.PrincipalSystem {
		return nil, yibao.Errorf(yibao.CodeForbidden, "only the system bootstraps policies; administrators draft and approve")
	}
	pol, err := policy.LoadPolicy(bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	json.Compact(&compact, doc)
	now := micros(s.now())
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var clash string
		err := tx.QueryRow(ctx, `SELECT version FROM policies WHERE admdvs = ? AND (version = ? OR (status = 'published'
			AND effective_from <= ? AND (effective_to = '' OR effective_to >= ?)))`, pol.Admdvs, pol.Version,
			orMax(pol.EffectiveTo), pol.EffectiveFrom).Scan(&clash)
		if err == nil {
			return yibao.Errorf(yibao.CodeConflict, "region %s already has version %s for these dates", pol.Admdvs, clash)
		}
		if !notFound(err) {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO policies (`+policyCols+`) VALUES (?, ?, ?, ?, 'published', ?, ?, ?, ?, 'bootstrap', ?, ?)`,
			pol.Admdvs, pol.Version, pol.EffectiveFrom, pol.EffectiveTo, compact.String(), p.ID(), p.ID(), p.ID(), now, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.forgetPolicies()
	return s.PolicyVersion(ctx, pol.Admdvs, pol.Version)
}

// PolicyVersion returns one version with its document. Any authenticated
// caller may read policies: they are public rules.
func (s *Service) PolicyVersion(ctx context.Context, admdvs, version string) (*PolicyVersion, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	v, err := scanPolicy(s.db.QueryRow(ctx, `SELECT `+policyCols+` FROM policies WHERE admdvs = ? AND version = ?`, admdvs, version), true)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "policy %s/%s not found", admdvs, version)
	}
	return v, err
}

// PolicyVersions lists a region's versions (all regions if admdvs is
// empty), newest first, without documents.
func (s *Service) PolicyVersions(ctx context.Context, admdvs string) ([]PolicyVersion, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	q, args := `SELECT `+policyCols+` FROM policies`, []any{}
	if admdvs != "" {
		q += ` WHERE admdvs = ?`
		args = append(args, admdvs)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY admdvs, effective_from DESC, version DESC`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []PolicyVersion{}
	for rows.Next() {
		v, err := scanPolicy(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

func (s *Service) forgetPolicies() {
	s.mu.Lock()
	s.policies = nil
	s.mu.Unlock()
}

// published returns the region's published versions, cached.
func (s *Service) published(ctx context.Context, admdvs string) ([]*policy.Policy, error) {
	if s.isRemote(admdvs) {
		return s.remotePublished(ctx, admdvs)
	}
	s.mu.RLock()
	list, ok := s.policies[admdvs]
	s.mu.RUnlock()
	if ok {
		return list, nil
	}
	rows, err := s.db.Query(ctx, `SELECT doc FROM policies WHERE admdvs = ? AND status = 'published'`, admdvs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		p, err := policy.LoadPolicy(bytes.NewReader([]byte(doc)))
		if err != nil {
			return nil, yibao.Wrap(yibao.CodeInternal, err, "a stored policy of "+admdvs+" does not load")
		}
		list = append(list, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.policies == nil {
		s.policies = map[string][]*policy.Policy{}
	}
	s.policies[admdvs] = list
	s.mu.Unlock()
	return list, nil
}

// selectPolicy picks the published version that covers the visit.
func (s *Service) selectPolicy(ctx context.Context, admdvs string, v *policy.Visit) (*policy.Policy, error) {
	list, err := s.published(ctx, admdvs)
	if err != nil {
		return nil, err
	}
	p, err := policy.Select(list, admdvs, v)
	if err != nil {
		return nil, yibao.Errorf(yibao.CodePrecondition, "no published policy of region %s covers %s", admdvs, v.SettlementDate)
	}
	return p, nil
}

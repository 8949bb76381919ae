package settlement

import (
	"context"
	"time"

	"yibao"
	"yibao/sqlstore"
)

// FamilyLink lets a member's bills draw on the holder's personal account
// (家庭共济), with the holder's recorded consent.
type FamilyLink struct {
	HolderPsnNo string     `json:"holder_psn_no"`
	MemberPsnNo string     `json:"member_psn_no"`
	Relation    string     `json:"relation"` // spouse | parent | child | grandparent | grandchild
	Status      string     `json:"status"`   // active | revoked
	ConsentedBy string     `json:"consented_by"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

var relations = map[string]bool{"spouse": true, "parent": true, "child": true, "grandparent": true, "grandchild": true}

// LinkFamily records the holder's consent. Administrators (at the bureau
// counter) record it today; the patient app records it with the holder's
// own e-certificate. Linking again re-activates a revoked link.
func (s *Service) LinkFamily(ctx context.Context, holder, member, relation string) (*FamilyLink, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if holder == member {
		return nil, yibao.FieldError("member_psn_no", "a person is not their own family member")
	}
	if !relations[relation] {
		return nil, yibao.FieldError("relation", "want spouse, parent, child, grandparent or grandchild")
	}
	covs, err := s.reg.CoveragesOn(ctx, holder, s.today())
	if err != nil {
		return nil, err
	}
	employee := false
	for _, c := range covs {
		employee = employee || c.Insutype == "310"
	}
	if !employee {
		return nil, yibao.Errorf(yibao.CodePrecondition, "holder %s has no employee coverage today, so no personal account to share", holder)
	}
	for _, psn := range []string{holder, member} {
		var n int
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM persons WHERE psn_no = ?`, psn).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, yibao.Errorf(yibao.CodeNotFound, "person %s not found", psn)
		}
	}
	who := yibao.PrincipalFrom(ctx).ID()
	now := s.now()
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE family_links SET relation = ?, status = 'active', consented_by = ?, created_at = ?, revoked_at = 0
			WHERE holder_psn_no = ? AND member_psn_no = ?`, relation, who, micros(now), holder, member)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO family_links (holder_psn_no, member_psn_no, relation, status, consented_by, created_at) VALUES (?, ?, ?, 'active', ?, ?)`,
			holder, member, relation, who, micros(now))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &FamilyLink{HolderPsnNo: holder, MemberPsnNo: member, Relation: relation, Status: "active", ConsentedBy: who, CreatedAt: now.UTC()}, nil
}

// UnlinkFamily revokes a link; settlements after it cannot use the account.
func (s *Service) UnlinkFamily(ctx context.Context, holder, member string) error {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	res, err := s.db.Exec(ctx, `UPDATE family_links SET status = 'revoked', revoked_at = ? WHERE holder_psn_no = ? AND member_psn_no = ? AND status = 'active'`,
		micros(s.now()), holder, member)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return yibao.Errorf(yibao.CodeNotFound, "no active link from %s to %s", holder, member)
	}
	return nil
}

// FamilyLinks lists the links where the person is holder or member.
func (s *Service) FamilyLinks(ctx context.Context, psnNo string) ([]FamilyLink, error) {
	if err := s.mayReadPerson(ctx, psnNo); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT holder_psn_no, member_psn_no, relation, status, consented_by, created_at, revoked_at FROM family_links
		WHERE holder_psn_no = ? OR member_psn_no = ? ORDER BY created_at`, psnNo, psnNo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []FamilyLink{}
	for rows.Next() {
		var l FamilyLink
		var c, r int64
		if err := rows.Scan(&l.HolderPsnNo, &l.MemberPsnNo, &l.Relation, &l.Status, &l.ConsentedBy, &c, &r); err != nil {
			return nil, err
		}
		l.CreatedAt, l.RevokedAt = fromMicros(c), optTime(r)
		out = append(out, l)
	}
	return out, rows.Err()
}

// checkFamily requires an active link from holder to member.
func (s *Service) checkFamily(ctx context.Context, holder, member string) error {
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM family_links WHERE holder_psn_no = ? AND member_psn_no = ? AND status = 'active'`,
		holder, member).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return yibao.Errorf(yibao.CodeForbidden, "%s has not consented to share their personal account with %s", holder, member)
	}
	return nil
}

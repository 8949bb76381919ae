package ecert

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strconv"
	"time"

	"yibao"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

func parseAdmdvs(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// Resolution is what an institution learns from a scanned code: who (as
// little as it needs), their coverage today, and an ecToken to use as the
// credential in later calls (mdtrt_cert_type 01).
type Resolution struct {
	EcToken       string           `json:"ec_token"`
	ExpiresAt     time.Time        `json:"expires_at"`
	CertID        string           `json:"cert_id"`
	MdtrtCertType string           `json:"mdtrt_cert_type"` // "01"
	Person        yibao.Person     `json:"person"`          // masked
	Coverages     []yibao.Coverage `json:"coverages"`
	Proxy         bool             `json:"shown_by_proxy,omitempty"` // a guardian's device showed it
}

// Resolve checks a scanned code for the calling institution: format,
// platform, device credential, device signature, time window (ecert/code),
// then that the device is still bound and the code was never used — the
// first successful use consumes it, a second use anywhere is refused. A
// code of another province's platform goes to that province's node
// through the national hub when the node is joined to one (Remote), and
// is refused otherwise.
func (s *Service) Resolve(ctx context.Context, text string) (*Resolution, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Institution == "" {
		return nil, yibao.Errorf(yibao.CodeForbidden, "only a hospital or pharmacy resolves codes")
	}
	var instAdmdvs string
	if err := s.db.QueryRow(ctx, `SELECT admdvs FROM institutions WHERE fixmedins_code = ?`, p.Institution).Scan(&instAdmdvs); err != nil {
		return nil, err
	}
	if c0, err := code.Parse(text); err == nil {
		if codeRegion := fmt.Sprintf("%06d", c0.Credential.Admdvs); codeRegion[:2] != instAdmdvs[:2] {
			if s.Remote == nil {
				return nil, yibao.Errorf(yibao.CodePrecondition,
					"cross_region_code: the e-certificate is of region %s, whose platform this node does not reach; identify the patient by ID card (mdtrt_cert_type 02)", codeRegion)
			}
			return s.Remote(ctx, text, codeRegion, p.Institution, instAdmdvs)
		}
	}
	now := s.now()
	tokBytes := make([]byte, 20)
	rand.Read(tokBytes)
	token := "EC" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(tokBytes)[:32] // 34 characters
	th := gmcrypto.SM3([]byte(token))
	exp := now.Add(s.cfg.TokenTTL)
	u, err := s.useCode(ctx, text, p.Institution, now, func(ctx context.Context, tx *sqlstore.Tx, u *UsedCode) error {
		_, err := tx.Exec(ctx, `INSERT INTO ec_tokens (token_hash, cert_id, psn_no, fixmedins_code, binding_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			th[:], u.CertID, u.PsnNo, p.Institution, u.BindingID, exp.UnixMicro(), now.UnixMicro())
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.resolution(ctx, u, token, exp, p.Institution)
}

// resolution is what the institution learns of a used code.
func (s *Service) resolution(ctx context.Context, u *UsedCode, token string, exp time.Time, institution string) (*Resolution, error) {
	sys := yibao.WithPrincipal(ctx, yibao.System("ecert"))
	person, err := s.reg.Person(sys, u.PsnNo, false)
	if err != nil {
		return nil, err
	}
	covs, err := s.reg.CoveragesOn(ctx, u.PsnNo, yibao.DateOf(s.now()))
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "e-certificate resolved", "cert_id", u.CertID, "institution", institution, "binding", u.BindingID, "proxy", u.Proxy != "")
	return &Resolution{EcToken: token, ExpiresAt: exp.UTC(), CertID: u.CertID, MdtrtCertType: "01", Person: *person, Coverages: covs, Proxy: u.Proxy != ""}, nil
}

// UsedCode is a code consumed at an institution.
type UsedCode struct {
	CertID    string `json:"cert_id"`
	PsnNo     string `json:"psn_no"`
	BindingID string `json:"binding_id"`
	Proxy     string `json:"proxy_psn_no,omitempty"`
}

// useCode verifies a code and consumes it for an institution, running
// also in the same transaction.
func (s *Service) useCode(ctx context.Context, text, institution string, now time.Time, also func(context.Context, *sqlstore.Tx, *UsedCode) error) (*UsedCode, error) {
	c, err := s.verify.Verify(text, now)
	if err != nil {
		return nil, err
	}
	devHash := gmcrypto.SM3(c.Credential.Device.Bytes())
	var u UsedCode
	var status string
	err = s.db.QueryRow(ctx, `SELECT d.binding_id, d.cert_id, d.status, d.proxy_psn_no, e.psn_no FROM ecert_devices d JOIN ecerts e ON e.cert_id = d.cert_id
		WHERE d.device_key_hash = ?`, devHash[:]).Scan(&u.BindingID, &u.CertID, &status, &u.Proxy, &u.PsnNo)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "device_unknown: this device is not bound to any e-certificate")
	}
	if err != nil {
		return nil, err
	}
	if status != "active" {
		return nil, yibao.Errorf(yibao.CodeForbidden, "device_revoked: this device's e-certificate binding was revoked; activate again")
	}
	if u.CertID != c.Credential.CertID.String() {
		return nil, yibao.Errorf(yibao.CodeBadSignature, "device_mismatch: the credential names another e-certificate")
	}
	id := c.ID()
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		until, err := forgottenUntil(ctx, tx)
		if err != nil {
			return err
		}
		if err := s.mayBeForgotten(c, until); err != nil {
			return err
		}
		if err := forgetOldCodes(ctx, tx, now, until); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ecert_used_codes (code_id, cert_id, fixmedins_code, binding_id, proxy_psn_no, used_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id[:], u.CertID, institution, u.BindingID, u.Proxy, now.UnixMicro()); err != nil {
			return err
		}
		if also != nil {
			return also(ctx, tx, &u)
		}
		return nil
	})
	if sqlstore.IsUniqueViolation(err) {
		return nil, yibao.Errorf(yibao.CodeConflict, "code_replayed: this code was already used; show a fresh one")
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// UseForeignCode consumes a code of this node's platform shown at a
// hospital of another region's node (the hub asked): the same checks as
// a scan here, the use recorded against that hospital. The treating node
// issues its own ecToken.
func (s *Service) UseForeignCode(ctx context.Context, text, fixmedinsCode string) (*UsedCode, error) {
	if len(fixmedinsCode) < 2 || len(fixmedinsCode) > 30 {
		return nil, yibao.FieldError("fixmedins_code", "name the treating institution")
	}
	u, err := s.useCode(ctx, text, fixmedinsCode, s.now(), nil)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "e-certificate used in another region", "cert_id", u.CertID, "institution", fixmedinsCode, "binding", u.BindingID)
	return u, nil
}

// CrossRegionResolution is Resolve's answer for a code another region's
// node consumed: this node issues the ecToken for a person it now keeps
// a copy of.
func (s *Service) CrossRegionResolution(ctx context.Context, u *UsedCode, institution string) (*Resolution, error) {
	token, exp, err := s.issue(ctx, u.PsnNo, u.CertID, institution, "xr:"+u.BindingID)
	if err != nil {
		return nil, err
	}
	return s.resolution(ctx, u, token, exp, institution)
}

// TokenPerson returns the person and e-certificate behind an ecToken, for
// the institution it was issued to. Errors: unauthenticated (unknown or
// expired token, or another institution's).
func (s *Service) TokenPerson(ctx context.Context, token string) (psn, certID string, err error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return "", "", err
	}
	th := gmcrypto.SM3([]byte(token))
	var inst string
	var exp int64
	err = s.db.QueryRow(ctx, `SELECT psn_no, cert_id, fixmedins_code, expires_at FROM ec_tokens WHERE token_hash = ?`, th[:]).Scan(&psn, &certID, &inst, &exp)
	if notFound(err) || (err == nil && (inst != p.Institution || s.now().UnixMicro() > exp)) {
		return "", "", yibao.Errorf(yibao.CodeUnauthenticated, "ec_token unknown, expired or issued to another institution; scan a fresh code")
	}
	return psn, certID, err
}

// BindToken records the visit an ecToken was used for. A token may open
// more than one visit at its institution within its lifetime; each
// further visit gets a row of its own (keyed by the SM3 of the token and
// the visit), so that VisitIdentifiedBy knows how every visit's person
// was identified — a face-issued token's second visit is face-identified
// too, and capped like the first.
func (s *Service) BindToken(ctx context.Context, token, mdtrtID string) error {
	th := gmcrypto.SM3([]byte(token))
	res, err := s.db.Exec(ctx, `UPDATE ec_tokens SET mdtrt_id = ? WHERE token_hash = ? AND mdtrt_id = ''`, mdtrtID, th[:])
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	vh := gmcrypto.SM3([]byte(token + "\x00" + mdtrtID))
	_, err = s.db.Exec(ctx, `INSERT INTO ec_tokens (token_hash, cert_id, psn_no, fixmedins_code, binding_id, mdtrt_id, expires_at, created_at)
		SELECT ?, cert_id, psn_no, fixmedins_code, binding_id, ?, expires_at, ? FROM ec_tokens WHERE token_hash = ? AND mdtrt_id <> ?
		ON CONFLICT (token_hash) DO NOTHING`, vh[:], mdtrtID, s.now().UnixMicro(), th[:], mdtrtID)
	return err
}

// SelfService returns the person behind a channel's own active binding,
// for the person's information queries, and logs the read.
func (s *Service) SelfService(ctx context.Context, bindingID, what string) (psn, certID string, err error) {
	ch, err := requireChannel(ctx)
	if err != nil {
		return "", "", err
	}
	var status, channel string
	err = s.db.QueryRow(ctx, `SELECT e.psn_no, d.cert_id, d.status, d.channel_id FROM ecert_devices d JOIN ecerts e ON e.cert_id = d.cert_id
		WHERE d.binding_id = ?`, bindingID).Scan(&psn, &certID, &status, &channel)
	if notFound(err) || (err == nil && channel != ch.Subject) {
		return "", "", yibao.Errorf(yibao.CodeNotFound, "binding %s not found", bindingID)
	}
	if err != nil {
		return "", "", err
	}
	if status != "active" {
		return "", "", yibao.Errorf(yibao.CodeForbidden, "device_revoked: binding %s was revoked", bindingID)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO ecert_reads (id, cert_id, channel_id, binding_id, what, at) VALUES (?, ?, ?, ?, ?, ?)`,
		newID("rd_", 10), certID, ch.Subject, bindingID, what, s.now().UnixMicro()); err != nil {
		return "", "", err
	}
	return psn, certID, nil
}

// Verifier exposes the offline verifier with this platform's trusted keys
// (benchmarks, terminals embedded in the same process).
func (s *Service) Verifier() *code.Verifier { return s.verify }

// Authorize checks a code the person's own device just made, to approve
// something in the app (paying a bill pushed to the phone): the code must
// verify, come from exactly this binding's device and never have been
// used. It is consumed like a code shown at a counter. what names the
// approval in the used-code record.
func (s *Service) Authorize(ctx context.Context, bindingID, text, what string) (psn string, err error) {
	ch, err := requireChannel(ctx)
	if err != nil {
		return "", err
	}
	now := s.now()
	c, err := s.verify.Verify(text, now)
	if err != nil {
		return "", err
	}
	devHash := gmcrypto.SM3(c.Credential.Device.Bytes())
	var certID, status string
	err = s.db.QueryRow(ctx, `SELECT d.cert_id, d.status, e.psn_no FROM ecert_devices d JOIN ecerts e ON e.cert_id = d.cert_id
		WHERE d.device_key_hash = ? AND d.binding_id = ? AND d.channel_id = ?`, devHash[:], bindingID, ch.Subject).Scan(&certID, &status, &psn)
	if notFound(err) {
		return "", yibao.Errorf(yibao.CodeBadSignature, "device_mismatch: the code was not made by this device")
	}
	if err != nil {
		return "", err
	}
	if status != "active" || certID != c.Credential.CertID.String() {
		return "", yibao.Errorf(yibao.CodeForbidden, "device_revoked: this device's e-certificate binding is not active")
	}
	until, err := forgottenUntil(ctx, s.db)
	if err != nil {
		return "", err
	}
	if err := s.mayBeForgotten(c, until); err != nil {
		return "", err
	}
	id := c.ID()
	_, err = s.db.Exec(ctx, `INSERT INTO ecert_used_codes (code_id, cert_id, fixmedins_code, binding_id, proxy_psn_no, used_at) VALUES (?, ?, ?, ?, '', ?)`,
		id[:], certID, what, bindingID, now.UnixMicro())
	if sqlstore.IsUniqueViolation(err) {
		return "", yibao.Errorf(yibao.CodeConflict, "code_replayed: this code was already used; make a fresh one")
	}
	return psn, err
}

// IssueToken issues an ecToken for a person identified at an institution
// by another means than a code scan (face payment: via names the face
// terminal). It opens a visit and settles like a scanned code's token;
// the visit records how the person was identified.
func (s *Service) IssueToken(ctx context.Context, psnNo, fixmedinsCode, via string) (string, time.Time, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	if !p.ActsFor(fixmedinsCode) {
		return "", time.Time{}, yibao.Errorf(yibao.CodeForbidden, "a token is issued only to the institution that identified the person")
	}
	var certID string
	if err := s.db.QueryRow(ctx, `SELECT cert_id FROM ecerts WHERE psn_no = ?`, psnNo).Scan(&certID); err != nil && !notFound(err) {
		return "", time.Time{}, err
	}
	return s.issue(ctx, psnNo, certID, fixmedinsCode, via)
}

// issue stores a new ecToken.
func (s *Service) issue(ctx context.Context, psnNo, certID, fixmedinsCode, via string) (string, time.Time, error) {
	tokBytes := make([]byte, 20)
	rand.Read(tokBytes)
	token := "EC" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(tokBytes)[:32]
	th := gmcrypto.SM3([]byte(token))
	now := s.now()
	exp := now.Add(s.cfg.TokenTTL)
	_, err := s.db.Exec(ctx, `INSERT INTO ec_tokens (token_hash, cert_id, psn_no, fixmedins_code, binding_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		th[:], certID, psnNo, fixmedinsCode, via, exp.UnixMicro(), now.UnixMicro())
	if err != nil {
		return "", time.Time{}, err
	}
	return token, exp, nil
}

// VisitIdentifiedBy returns how a visit's person was identified: the
// binding of the ecToken that opened it ("face:<terminal>" for a face),
// or "" for a visit opened without a token.
func (s *Service) VisitIdentifiedBy(ctx context.Context, mdtrtID string) (string, error) {
	var via string
	// "mdtrt_id <> ''" lets SQLite use the partial index ec_tokens_visit;
	// with a bound parameter alone it cannot tell and scans every token.
	err := s.db.QueryRow(ctx, `SELECT binding_id FROM ec_tokens WHERE mdtrt_id = ? AND mdtrt_id <> '' ORDER BY created_at DESC LIMIT 1`, mdtrtID).Scan(&via)
	if notFound(err) {
		return "", nil
	}
	return via, err
}

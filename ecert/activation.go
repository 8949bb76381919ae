package ecert

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"yibao"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// OutboxSMS is the development SMS gateway: messages go to the sms_outbox
// table, which the demo shows to administrators. It is a simulator, named
// as such; production uses the operator's gateway.
type OutboxSMS struct{ DB *sqlstore.DB }

// Send records the message with the phone masked.
func (o OutboxSMS) Send(ctx context.Context, phone, text string) error {
	_, err := o.DB.Exec(ctx, `INSERT INTO sms_outbox (id, phone_masked, text, created_at) VALUES (?, ?, ?, ?)`,
		newID("sms_", 8), yibao.MaskPhone(phone), text, time.Now().UnixMicro())
	return err
}

// Message is one simulated SMS.
type Message struct {
	ID          string    `json:"id"`
	PhoneMasked string    `json:"phone_masked"`
	Text        string    `json:"text"`
	CreatedAt   time.Time `json:"created_at"`
}

// DevMessages lists the simulated SMS outbox, newest first (administrators).
func (s *Service) DevMessages(ctx context.Context, limit int) ([]Message, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 200 {
		limit = 20
	}
	rows, err := s.db.Query(ctx, `SELECT id, phone_masked, text, created_at FROM sms_outbox ORDER BY created_at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		var m Message
		var at int64
		if err := rows.Scan(&m.ID, &m.PhoneMasked, &m.Text, &at); err != nil {
			return nil, err
		}
		m.CreatedAt = time.UnixMicro(at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// ActivationRequest starts activation on a channel: the person's real
// name (ID number and name, checked against the registry). A guardian
// activating for a minor, or for a relative who consented, gives their own
// ID number as ProxyIDNumber: the code goes to the guardian's phone.
type ActivationRequest struct {
	IDNumber      string `json:"id_number"`
	Name          string `json:"name"`
	ProxyIDNumber string `json:"proxy_id_number,omitempty"`
}

// Activation is a started activation.
type Activation struct {
	ActivationID string    `json:"activation_id"`
	SentTo       string    `json:"sent_to"` // the masked phone
	ExpiresAt    time.Time `json:"expires_at"`
}

const maxOTPAttempts = 5

// StartActivation checks the real name and sends a one-time code to the
// registered phone (of the guardian, for a proxy). Channels only. Wrong
// names and unknown ID numbers get the same answer, so the call cannot be
// used to probe the registry.
func (s *Service) StartActivation(ctx context.Context, r ActivationRequest) (*Activation, error) {
	ch, err := requireChannel(ctx)
	if err != nil {
		return nil, err
	}
	sys := yibao.WithPrincipal(ctx, yibao.System("ecert"))
	mismatch := yibao.Errorf(yibao.CodeInvalid, "the ID number and name do not match an insured person")
	if _, err := yibao.ParseIDNumber(r.IDNumber, s.now()); err != nil {
		return nil, err
	}
	psn, err := s.reg.PersonByIDNumber(sys, r.IDNumber)
	if yibao.IsCode(err, yibao.CodeNotFound) {
		return nil, mismatch
	}
	if err != nil {
		return nil, err
	}
	p, err := s.reg.Person(sys, psn, true)
	if err != nil {
		return nil, err
	}
	if p.Name != r.Name {
		return nil, mismatch
	}
	phoneOf, proxy := p, ""
	if r.ProxyIDNumber != "" {
		gpsn, err := s.reg.PersonByIDNumber(sys, r.ProxyIDNumber)
		if err != nil {
			return nil, yibao.Errorf(yibao.CodeInvalid, "the guardian is not an insured person")
		}
		if err := s.mayProxy(ctx, gpsn, p); err != nil {
			return nil, err
		}
		if phoneOf, err = s.reg.Person(sys, gpsn, true); err != nil {
			return nil, err
		}
		proxy = gpsn
	}
	if phoneOf.Phone == "" {
		return nil, yibao.Errorf(yibao.CodePrecondition, "no phone is registered; update it at a bureau counter")
	}
	var nb [4]byte
	rand.Read(nb[:])
	otp := fmt.Sprintf("%06d", binary.BigEndian.Uint32(nb[:])%1_000_000)
	id := newID("act_", 12)
	now := s.now()
	exp := now.Add(s.cfg.OTPTTL)
	if _, err := s.db.Exec(ctx, `INSERT INTO ecert_activations (activation_id, psn_no, channel_id, proxy_psn_no, otp_mac, attempts, status, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, 0, 'pending', ?, ?)`, id, psn, ch.Subject, proxy, s.otpMAC(id, otp), exp.UnixMicro(), now.UnixMicro()); err != nil {
		return nil, err
	}
	text := fmt.Sprintf("【医保电子凭证】验证码 %s，%d 分钟内有效。您正在 %s 激活医保电子凭证，请勿告诉他人。", otp, int(s.cfg.OTPTTL.Minutes()), ch.DisplayName)
	if err := s.sms.Send(ctx, phoneOf.Phone, text); err != nil {
		return nil, yibao.Wrap(yibao.CodeUnavailable, err, "the SMS gateway did not take the message; try again")
	}
	return &Activation{ActivationID: id, SentTo: yibao.MaskPhone(phoneOf.Phone), ExpiresAt: exp.UTC()}, nil
}

// mayProxy: a guardian may hold the code of a minor (under 18) or of a
// relative who consented through a family link (holder → guardian).
func (s *Service) mayProxy(ctx context.Context, guardian string, p *yibao.Person) error {
	birth, err := time.Parse(time.DateOnly, p.BirthDate)
	if err == nil && s.now().Before(birth.AddDate(18, 0, 0)) {
		return nil
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM family_links WHERE holder_psn_no = ? AND member_psn_no = ? AND status = 'active'`,
		p.PsnNo, guardian).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return yibao.Errorf(yibao.CodeForbidden, "an adult's e-certificate can be held by a relative only with their recorded consent")
	}
	return nil
}

func (s *Service) otpMAC(activationID, otp string) []byte {
	return gmcrypto.HMACSM3(s.otpKey, []byte(activationID+"/"+otp))
}

// Binding is an activated device: the e-certificate on one channel.
type Binding struct {
	BindingID   string     `json:"binding_id"`
	CertID      string     `json:"cert_id"`
	ChannelID   string     `json:"channel_id"`
	ProxyPsnNo  string     `json:"proxy_psn_no,omitempty"`
	Status      string     `json:"status"`
	Credential  string     `json:"credential,omitempty"` // hex, 154 bytes: give it to the device
	StepSeconds int        `json:"step_seconds,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	RevokedBy   string     `json:"revoked_by,omitempty"`
	Reason      string     `json:"revoked_reason,omitempty"`
}

// ConfirmActivation checks the one-time code and binds the device: the
// person's e-certificate is created on first activation (its id never
// changes), the device's public key is certified by the insured region's
// platform, and an earlier device of the same person on the same channel
// is revoked (re-activation on a new phone).
func (s *Service) ConfirmActivation(ctx context.Context, activationID, otp string, devicePub []byte) (*Binding, error) {
	ch, err := requireChannel(ctx)
	if err != nil {
		return nil, err
	}
	dev, err := gmcrypto.ParsePublicKey(devicePub)
	if err != nil {
		return nil, yibao.FieldError("device_public_key", "want the device's 65-byte SM2 public key in hex")
	}
	now := s.now()
	var psn, channel, proxy, status string
	var mac []byte
	var attempts int
	var exp int64
	err = s.db.QueryRow(ctx, `SELECT psn_no, channel_id, proxy_psn_no, otp_mac, attempts, status, expires_at FROM ecert_activations WHERE activation_id = ?`,
		activationID).Scan(&psn, &channel, &proxy, &mac, &attempts, &status, &exp)
	if notFound(err) || (err == nil && channel != ch.Subject) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "activation %s not found", activationID)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case status != "pending":
		return nil, yibao.Errorf(yibao.CodePrecondition, "activation %s is %s; start again", activationID, status)
	case now.UnixMicro() > exp:
		return nil, yibao.Errorf(yibao.CodePrecondition, "the one-time code expired; start again")
	}
	if !gmcrypto.HMACEqual(mac, s.otpMAC(activationID, otp)) {
		attempts++
		st := "pending"
		if attempts >= maxOTPAttempts {
			st = "failed"
		}
		if _, err := s.db.Exec(ctx, `UPDATE ecert_activations SET attempts = ?, status = ? WHERE activation_id = ?`, attempts, st, activationID); err != nil {
			return nil, err
		}
		return nil, yibao.FieldError("otp", "wrong one-time code (%d of %d attempts used)", attempts, maxOTPAttempts)
	}
	var admdvs string
	if err := s.db.QueryRow(ctx, `SELECT admdvs FROM coverages WHERE psn_no = ? AND status = 'active' ORDER BY start_date DESC LIMIT 1`, psn).Scan(&admdvs); err != nil {
		if notFound(err) {
			return nil, yibao.Errorf(yibao.CodePrecondition, "the person has no active coverage")
		}
		return nil, err
	}
	region, _ := parseAdmdvs(admdvs)
	s.mu.RLock()
	plat := s.plats[region]
	s.mu.RUnlock()
	if plat == nil { // a region registered since the platforms were last set up
		if err := s.EnsurePlatforms(ctx); err != nil {
			return nil, err
		}
		s.mu.RLock()
		plat = s.plats[region]
		s.mu.RUnlock()
	}
	if plat == nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "region %s has no e-certificate platform key yet", admdvs)
	}
	devHash := gmcrypto.SM3(devicePub)
	b := &Binding{BindingID: newID("bd_", 12), ChannelID: ch.Subject, ProxyPsnNo: proxy, Status: "active", StepSeconds: s.cfg.StepSeconds, CreatedAt: now.UTC()}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE ecert_activations SET status = 'done' WHERE activation_id = ? AND status = 'pending'`, activationID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "activation %s was completed meanwhile", activationID)
		}
		var certID string
		err = tx.QueryRow(ctx, `SELECT cert_id FROM ecerts WHERE psn_no = ?`, psn).Scan(&certID)
		if notFound(err) {
			var id code.CertID
			rand.Read(id[:])
			certID = id.String()
			_, err = tx.Exec(ctx, `INSERT INTO ecerts (cert_id, psn_no, admdvs, created_at) VALUES (?, ?, ?, ?)`, certID, psn, admdvs, now.UnixMicro())
		}
		if err != nil {
			return err
		}
		cid, _ := code.ParseCertID(certID)
		cred, err := code.IssueCredential(plat.key, region, plat.cert.KeyID, cid, dev, now.Add(s.cfg.CredentialTTL))
		if err != nil {
			return err
		}
		// One device per person, channel and holder: the previous one goes.
		if _, err := tx.Exec(ctx, `UPDATE ecert_devices SET status = 'revoked', revoked_at = ?, revoked_by = ?, revoked_reason = 're-activated on another device'
			WHERE cert_id = ? AND channel_id = ? AND proxy_psn_no = ? AND status = 'active'`, now.UnixMicro(), ch.ID(), certID, ch.Subject, proxy); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ecert_devices (binding_id, cert_id, channel_id, proxy_psn_no, device_key_hash, credential, status, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 'active', ?)`, b.BindingID, certID, ch.Subject, proxy, devHash[:], cred.Bytes(), now.UnixMicro()); err != nil {
			if sqlstore.IsUniqueViolation(err) {
				return yibao.Errorf(yibao.CodeConflict, "this device key is already bound; make a new key for a new activation")
			}
			return err
		}
		b.CertID, b.Credential = certID, hex.EncodeToString(cred.Bytes())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

const bindingCols = `binding_id, cert_id, channel_id, proxy_psn_no, status, created_at, revoked_at, revoked_by, revoked_reason`

func scanBinding(sc interface{ Scan(...any) error }) (*Binding, error) {
	var b Binding
	var c, r int64
	if err := sc.Scan(&b.BindingID, &b.CertID, &b.ChannelID, &b.ProxyPsnNo, &b.Status, &c, &r, &b.RevokedBy, &b.Reason); err != nil {
		return nil, err
	}
	b.CreatedAt = time.UnixMicro(c).UTC()
	if r > 0 {
		t := time.UnixMicro(r).UTC()
		b.RevokedAt = &t
	}
	return &b, nil
}

// Bindings lists an e-certificate's devices: administrators, or a channel
// holding an active binding of it (a person managing their devices).
func (s *Service) Bindings(ctx context.Context, certID string) ([]Binding, error) {
	if err := s.mayManage(ctx, certID); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+bindingCols+` FROM ecert_devices WHERE cert_id = ? ORDER BY created_at`, certID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Binding{}
	for rows.Next() {
		b, err := scanBinding(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	return out, rows.Err()
}

func (s *Service) mayManage(ctx context.Context, certID string) error {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return err
	}
	if p.IsAdmin() {
		return nil
	}
	if p.Kind == yibao.PrincipalChannel {
		var n int
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM ecert_devices WHERE cert_id = ? AND channel_id = ? AND status = 'active'`, certID, p.Subject).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return yibao.Errorf(yibao.CodeNotFound, "e-certificate %s not found", certID)
}

// Revoke revokes one device (bindingID) or, with bindingID empty, every
// device of the e-certificate (a lost phone): from any channel that holds
// an active binding of it, or by the bureau. Resolution reads the
// database, so a revoked device's next code is refused at once.
func (s *Service) Revoke(ctx context.Context, certID, bindingID, reason string) (int, error) {
	if err := s.mayManage(ctx, certID); err != nil {
		return 0, err
	}
	if len(reason) > 200 {
		return 0, yibao.FieldError("reason", "at most 200 bytes")
	}
	who := yibao.PrincipalFrom(ctx).ID()
	q, args := `UPDATE ecert_devices SET status = 'revoked', revoked_at = ?, revoked_by = ?, revoked_reason = ? WHERE cert_id = ? AND status = 'active'`,
		[]any{s.now().UnixMicro(), who, reason, certID}
	if bindingID != "" {
		q += ` AND binding_id = ?`
		args = append(args, bindingID)
	}
	res, err := s.db.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if n == 0 && bindingID != "" {
		return 0, yibao.Errorf(yibao.CodeNotFound, "no active binding %s", bindingID)
	}
	return int(n), nil
}

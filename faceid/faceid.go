// Package faceid is face payment's service: separate, revocable consent;
// enrolment from the patient app or at a counter with the ID number;
// templates sealed with SM4-GCM (images are never kept); registered face
// terminals that sign what they send; verification 1:1 (the ID number
// names the person, the face confirms) or 1:N only inside a gallery
// narrowed by the region and the last four phone digits typed at the
// terminal, with a margin between the best and the second best; passive
// liveness from the model plus an active challenge over several frames;
// and an ecToken for the matched person, so the visit opens and settles
// as after a code scan. The face core (embedding, search) is yibao/face.
package faceid

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/face"
	"yibao/face/gallery"
	"yibao/gmcrypto"
	"yibao/money"
	"yibao/registry"
	"yibao/sqlstore"
)

// ConsentVersion is the consent text's version; a new text is a new
// version and consents to an older one do not count.
const ConsentVersion = "face-consent-2026-12"

// ConsentText is what the person reads before agreeing.
var ConsentText = map[string]string{
	"version": ConsentVersion,
	"zh": `刷脸支付单独授权
1. 用途：仅用于在定点医院、药店核验您的身份并完成医保结算和支付。
2. 收集：登记时拍摄的照片只用于生成人脸特征，处理后立即删除，不保存照片；特征值以国密 SM4 加密保存。
3. 使用：刷脸时须输入身份证号（1:1 比对）或手机号后四位（在小范围内比对），并做活体检测；大额支付需出示医保码或到窗口支付。
4. 撤回：您可随时在本应用撤回授权，撤回后全部人脸特征立即删除；不影响您扫码或刷卡就医。
5. 不满 14 周岁的未成年人须由监护人授权。`,
	"en": `Face payment — separate consent
1. Purpose: only to confirm who you are at designated hospitals and pharmacies and to settle and pay.
2. Collection: the photo taken at enrolment is used only to compute a face template and deleted right after; no photo is kept; the template is stored encrypted with SM4.
3. Use: paying by face needs your ID number (1:1) or the last four digits of your phone (a small gallery) and a liveness check; large payments need your e-certificate code or the counter.
4. Withdrawal: withdraw in this app at any time; every template is deleted at once; scanning your code or card keeps working.
5. Children under 14 need a guardian's consent.`,
}

// Config are the decision thresholds and limits. The defaults come from
// `yibao face eval` on the bundled model (docs/face.md).
type Config struct {
	Match1to1   float32   // cosine a 1:1 verification needs
	Match1toN   float32   // cosine a 1:N identification needs
	Margin      float32   // best − second best in 1:N
	SameFrames  float32   // cosine every frame needs against the first (one person in front of the camera)
	MinLiveness float64   // the model's live-face probability, averaged over the frames
	Closer      float64   // face width growth the "closer" challenge needs (1.15 = 15 %)
	CapPharmacy money.Fen // face-only payment per settlement at a pharmacy
	CapHospital money.Fen // … at a hospital
}

// DefaultConfig returns the calibrated defaults.
func DefaultConfig() Config {
	return Config{Match1to1: 0.55, Match1toN: 0.62, Margin: 0.1, SameFrames: 0.5, MinLiveness: 0.5, Closer: 1.12,
		CapPharmacy: money.Yuan(5000), CapHospital: money.Yuan(50000)}
}

// Tokens issues the ecToken a matched face stands for (the e-certificate
// service implements it).
type Tokens interface {
	IssueToken(ctx context.Context, psnNo, fixmedinsCode, via string) (token string, expires time.Time, err error)
}

// Service runs face payment.
type Service struct {
	db     *sqlstore.DB
	reg    *registry.Service
	keys   *gmcrypto.Keyring
	scope  []byte // HMAC key of the 1:N gallery scopes
	emb    face.Embedder
	off    error // why face payment is off (models missing), nil when on
	tokens Tokens
	cfg    Config
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex
	gallery *gallery.Index
	loaded  bool

	// Audit records consents, enrolments, deletions and terminals.
	Audit *audit.Writer
}

// New returns the service. emb may be nil with off saying why (the
// models are not installed): every face call then answers unavailable
// with that reason, and nothing else is affected.
func New(db *sqlstore.DB, reg *registry.Service, keys *gmcrypto.Keyring, master []byte, emb face.Embedder, off error, tokens Tokens, cfg Config, log *slog.Logger) *Service {
	return &Service{db: db, reg: reg, keys: keys, scope: gmcrypto.DeriveKey(master, "yibao/face/scope", 32), emb: emb, off: off, tokens: tokens, cfg: cfg,
		now: time.Now, log: log}
}

// Tune changes the configuration before use (tests).
func (s *Service) Tune(f func(*Config)) { f(&s.cfg) }

// Status says whether face payment is on, and why not.
func (s *Service) Status() (bool, string) {
	if s.emb == nil {
		msg := "face payment is off"
		if s.off != nil {
			msg += ": " + s.off.Error()
		}
		return false, msg
	}
	return true, "face payment is on (" + s.emb.Space() + ")"
}

func (s *Service) ready() error {
	if on, msg := s.Status(); !on {
		return yibao.Errorf(yibao.CodeUnavailable, "%s", msg)
	}
	return nil
}

// Config returns the thresholds and limits in force.
func (s *Service) Config() Config { return s.cfg }

// --- consent and enrolment ---

// Consent is a person's face-payment consent.
type Consent struct {
	PsnNo       string     `json:"psn_no,omitempty"`
	Status      string     `json:"status"` // none | given | withdrawn
	Version     string     `json:"version,omitempty"`
	Channel     string     `json:"channel,omitempty"`
	GivenAt     *time.Time `json:"given_at,omitempty"`
	WithdrawnAt *time.Time `json:"withdrawn_at,omitempty"`
	Templates   int        `json:"templates"`
}

// ConsentOf returns a person's consent and how many templates they have.
func (s *Service) ConsentOf(ctx context.Context, psnNo string) (*Consent, error) {
	c := &Consent{PsnNo: psnNo, Status: "none"}
	var g, w int64
	err := s.db.QueryRow(ctx, `SELECT status, version, channel, given_at, withdrawn_at FROM face_consents WHERE psn_no = ?`, psnNo).Scan(&c.Status, &c.Version, &c.Channel, &g, &w)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if g != 0 {
		t := time.UnixMicro(g).UTC()
		c.GivenAt = &t
	}
	if w != 0 {
		t := time.UnixMicro(w).UTC()
		c.WithdrawnAt = &t
	}
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM face_templates WHERE psn_no = ?`, psnNo).Scan(&c.Templates); err != nil {
		return nil, err
	}
	return c, nil
}

// GiveConsent records a person's explicit consent to the current text.
func (s *Service) GiveConsent(ctx context.Context, psnNo, version, channel string) (*Consent, error) {
	if version != ConsentVersion {
		return nil, yibao.FieldError("consent_version", "the consent text changed; read version %s", ConsentVersion)
	}
	if channel != "app" && channel != "counter" {
		return nil, yibao.FieldError("channel", "app or counter")
	}
	if err := s.adultOrGuardian(ctx, psnNo); err != nil {
		return nil, err
	}
	now := s.now()
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO face_consents (psn_no, status, version, channel, actor, given_at, withdrawn_at) VALUES (?, 'given', ?, ?, ?, ?, 0)
			ON CONFLICT (psn_no) DO UPDATE SET status = 'given', version = excluded.version, channel = excluded.channel, actor = excluded.actor,
			given_at = excluded.given_at, withdrawn_at = 0`, psnNo, version, channel, actorOf(ctx), micros(now)); err != nil {
			return err
		}
		return s.record(ctx, tx, "consent:"+psnNo+":"+fmt.Sprint(now.UnixMicro()), psnNo, map[string]any{"event": "consent_given", "person": s.Audit.Person(psnNo),
			"version": version, "channel": channel})
	})
	if err != nil {
		return nil, err
	}
	return s.ConsentOf(ctx, psnNo)
}

// adultOrGuardian refuses a child under 14 (a guardian's consent flow is
// not built; docs/face.md).
func (s *Service) adultOrGuardian(ctx context.Context, psnNo string) error {
	var birth string
	if err := s.db.QueryRow(ctx, `SELECT birth_date FROM persons WHERE psn_no = ?`, psnNo).Scan(&birth); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return yibao.Errorf(yibao.CodeNotFound, "person %s not found", psnNo)
		}
		return err
	}
	b, err := time.Parse(yibao.DateLayout, birth)
	if err == nil && s.now().Before(b.AddDate(14, 0, 0)) {
		return yibao.Errorf(yibao.CodePrecondition, "minor: a child under 14 enrols only with a guardian's consent, which is not offered here; use the e-certificate code")
	}
	return nil
}

// Withdraw withdraws consent and deletes every template of the person,
// in one transaction.
func (s *Service) Withdraw(ctx context.Context, psnNo string) (*Consent, error) {
	now := s.now()
	var ids []int64
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM face_templates WHERE psn_no = ?`, psnNo)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if _, err := tx.Exec(ctx, `DELETE FROM face_templates WHERE psn_no = ?`, psnNo); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE face_consents SET status = 'withdrawn', withdrawn_at = ? WHERE psn_no = ?`, micros(now), psnNo); err != nil {
			return err
		}
		return s.record(ctx, tx, "withdrawn:"+psnNo+":"+fmt.Sprint(now.UnixMicro()), psnNo, map[string]any{"event": "consent_withdrawn",
			"person": s.Audit.Person(psnNo), "templates_deleted": len(ids)})
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.gallery != nil {
		for _, id := range ids {
			s.gallery.Remove(id)
		}
	}
	s.mu.Unlock()
	return s.ConsentOf(ctx, psnNo)
}

// Enrol makes a template of the person from one image (JPEG or PNG) and
// stores it sealed; the image is not kept. Consent must have been given.
// A person keeps at most 3 templates (the oldest goes).
func (s *Service) Enrol(ctx context.Context, psnNo string, image []byte) (*Consent, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	c, err := s.ConsentOf(ctx, psnNo)
	if err != nil {
		return nil, err
	}
	if c.Status != "given" || c.Version != ConsentVersion {
		return nil, yibao.Errorf(yibao.CodePrecondition, "no_face_consent: face payment needs the person's separate consent first")
	}
	f, err := s.embed(ctx, image)
	if err != nil {
		return nil, err
	}
	p, err := s.reg.Person(yibao.WithPrincipal(ctx, yibao.System("face")), psnNo, true)
	if err != nil {
		return nil, err
	}
	phone := strings.TrimSpace(p.Phone)
	if len(phone) < 4 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "no_phone: the person has no phone number on record; 1:N search needs its last four digits")
	}
	id := randomID()
	sealed, err := s.keys.Seal(vectorBytes(f.Vector), templateAAD(psnNo, id))
	if err != nil {
		return nil, err
	}
	scope := s.scopeOf(p.Admdvs, phone[len(phone)-4:])
	now := s.now()
	quality := fmt.Sprintf(`{"width":%.0f,"brightness":%.0f,"sharpness":%.1f,"det":%.2f,"liveness":%.2f}`, f.Quality.Width, f.Quality.Brightness, f.Quality.Sharpness, f.Quality.DetScore, f.Liveness)
	var dropped []int64
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO face_templates (id, psn_no, space, key_id, sealed, scope, admdvs, quality, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, psnNo, s.emb.Space(), s.keys.ActiveKeyID(), sealed, scope, p.Admdvs, quality, micros(now)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM face_templates WHERE psn_no = ? ORDER BY created_at DESC`, psnNo)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			var old int64
			if err := rows.Scan(&old); err != nil {
				rows.Close()
				return err
			}
			if n++; n > 3 {
				dropped = append(dropped, old)
			}
		}
		rows.Close()
		for _, old := range dropped {
			if _, err := tx.Exec(ctx, `DELETE FROM face_templates WHERE id = ?`, old); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, fmt.Sprintf("enrolled:%d", id), psnNo, map[string]any{"event": "enrolled", "person": s.Audit.Person(psnNo),
			"space": s.emb.Space(), "key_id": s.keys.ActiveKeyID(), "image_kept": false})
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.loaded {
		if s.gallery == nil {
			s.gallery = gallery.New(len(f.Vector))
		}
		s.gallery.Add(id, f.Vector)
		for _, old := range dropped {
			s.gallery.Remove(old)
		}
	}
	s.mu.Unlock()
	return s.ConsentOf(ctx, psnNo)
}

// EnrolAtCounter enrols a person who is at a counter with their ID card:
// the ID number and name must match the register; the consent is given
// there (the cashier records it) and the photo is taken by a terminal.
func (s *Service) EnrolAtCounter(ctx context.Context, idNumber, name string, accept bool, image []byte) (*Consent, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Institution == "" {
		return nil, yibao.Errorf(yibao.CodeForbidden, "enrolment at a counter is done by a hospital or pharmacy")
	}
	if !accept {
		return nil, yibao.FieldError("accept", "the person must read the consent and accept it")
	}
	psn, err := s.reg.PersonByIDNumber(ctx, strings.TrimSpace(idNumber))
	if err != nil {
		return nil, err
	}
	full, err := s.reg.Person(yibao.WithPrincipal(ctx, yibao.System("face")), psn, true)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(name) != full.Name {
		return nil, yibao.Errorf(yibao.CodeNotFound, "no insured person with that ID number and name")
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	if _, err := s.embed(ctx, image); err != nil { // check the photo before recording anything
		return nil, err
	}
	if _, err := s.GiveConsent(ctx, psn, ConsentVersion, "counter"); err != nil {
		return nil, err
	}
	return s.Enrol(ctx, psn, image)
}

// embed decodes an upload and makes its template, mapping the core's
// errors to API errors.
func (s *Service) embed(ctx context.Context, image []byte) (*face.Face, error) {
	if len(image) > face.MaxImageBytes {
		return nil, yibao.Errorf(yibao.CodeTooLarge, "bad_image: an image is at most %d MiB", face.MaxImageBytes>>20)
	}
	img, err := face.Decode(strings.NewReader(string(image)), face.MaxImageBytes)
	if err != nil {
		return nil, faceError(err)
	}
	f, err := s.emb.Embed(ctx, img)
	if err != nil {
		return nil, faceError(err)
	}
	return f, nil
}

func faceError(err error) error {
	switch {
	case errors.Is(err, face.ErrNoFace):
		return yibao.Errorf(yibao.CodeInvalid, "no_face: no face in the image; face the camera")
	case errors.Is(err, face.ErrManyFaces):
		return yibao.Errorf(yibao.CodeInvalid, "many_faces: more than one face in the image; one person at a time")
	case errors.Is(err, face.ErrTooSmall):
		return yibao.Errorf(yibao.CodeInvalid, "too_small: the face or the image is too small; come closer")
	case errors.Is(err, face.ErrTooDark):
		return yibao.Errorf(yibao.CodeInvalid, "too_dark: the image is too dark; more light")
	case errors.Is(err, face.ErrBadImage):
		return yibao.Errorf(yibao.CodeInvalid, "bad_image: send one JPEG or PNG within the size limits")
	}
	return err
}

// --- helpers ---

func (s *Service) scopeOf(admdvs, last4 string) string {
	return hex.EncodeToString(gmcrypto.HMACSM3(s.scope, []byte(admdvs+"|"+last4))[:16])
}

func templateAAD(psnNo string, id int64) []byte { return []byte(fmt.Sprintf("face/%s/%d", psnNo, id)) }

func vectorBytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesVector(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func randomID() int64 {
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func actorOf(ctx context.Context) string {
	if p := yibao.PrincipalFrom(ctx); p != nil {
		return p.ID()
	}
	return ""
}

func (s *Service) record(ctx context.Context, tx *sqlstore.Tx, id, subject string, data map[string]any) error {
	return s.Audit.Record(ctx, tx, audit.Entry{ID: "face:" + id, Kind: audit.KindFace, At: audit.Stamp(s.now()), Actor: actorOf(ctx), Subject: s.Audit.Person(subject), Data: data})
}

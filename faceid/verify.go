package faceid

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/face"
	"yibao/face/gallery"
	"yibao/gmcrypto"
	"yibao/money"
	"yibao/sqlstore"
)

// Terminal is a registered face terminal (a camera at a counter).
type Terminal struct {
	TerminalID    string    `json:"terminal_id"`
	FixmedinsCode string    `json:"fixmedins_code"`
	Name          string    `json:"name"`
	PublicKey     string    `json:"public_key"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
}

var terminalRe = regexp.MustCompile(`^[A-Za-z0-9_-]{4,40}$`)

// RegisterTerminal registers a terminal of the caller's institution (or,
// for an administrator, any) with its SM2 public key. Registering the
// same id again with the same key returns it; another key is refused
// (revoke first).
func (s *Service) RegisterTerminal(ctx context.Context, t Terminal) (*Terminal, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if t.FixmedinsCode == "" {
		t.FixmedinsCode = p.Institution
	}
	if !p.ActsFor(t.FixmedinsCode) || t.FixmedinsCode == "" {
		return nil, yibao.Errorf(yibao.CodeForbidden, "you may register terminals only of your own institution")
	}
	if !terminalRe.MatchString(t.TerminalID) {
		return nil, yibao.FieldError("terminal_id", "4–40 letters, digits, _ or -")
	}
	if _, err := parseTerminalKey(t.PublicKey); err != nil {
		return nil, yibao.FieldError("public_key", "want an SM2 public key: PEM, or the hex of the 65-byte uncompressed point")
	}
	if strings.TrimSpace(t.Name) == "" {
		t.Name = t.TerminalID
	}
	now := s.now()
	t.Status, t.CreatedAt = "active", now.UTC()
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var key, inst, status string
		err := tx.QueryRow(ctx, `SELECT public_key, fixmedins_code, status FROM face_terminals WHERE terminal_id = ?`, t.TerminalID).Scan(&key, &inst, &status)
		switch {
		case err == nil && key == t.PublicKey && inst == t.FixmedinsCode && status == "active":
			return nil
		case err == nil:
			return yibao.Errorf(yibao.CodeConflict, "terminal %s is registered with another key or institution", t.TerminalID)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO face_terminals (terminal_id, fixmedins_code, name, public_key, status, created_by, created_at) VALUES (?, ?, ?, ?, 'active', ?, ?)`,
			t.TerminalID, t.FixmedinsCode, t.Name, t.PublicKey, p.ID(), micros(now)); err != nil {
			return err
		}
		h := gmcrypto.SM3([]byte(t.PublicKey))
		return s.Audit.Record(ctx, tx, audit.Entry{ID: "face:terminal:" + t.TerminalID, Kind: audit.KindKey, At: audit.Stamp(now), Actor: p.ID(),
			Subject: t.TerminalID, Data: map[string]any{"event": "face_terminal_registered", "fixmedins_code": t.FixmedinsCode, "key_sm3": hex.EncodeToString(h[:])}})
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Service) terminal(ctx context.Context, id string) (*Terminal, *gmcrypto.PublicKey, error) {
	var t Terminal
	var c int64
	err := s.db.QueryRow(ctx, `SELECT terminal_id, fixmedins_code, name, public_key, status, created_at FROM face_terminals WHERE terminal_id = ?`, id).
		Scan(&t.TerminalID, &t.FixmedinsCode, &t.Name, &t.PublicKey, &t.Status, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, yibao.Errorf(yibao.CodeForbidden, "unknown_terminal: terminal %s is not registered", id)
	}
	if err != nil {
		return nil, nil, err
	}
	p, _ := yibao.RequirePrincipal(ctx)
	if !p.ActsFor(t.FixmedinsCode) {
		return nil, nil, yibao.Errorf(yibao.CodeForbidden, "unknown_terminal: terminal %s is not one of yours", id)
	}
	if t.Status != "active" {
		return nil, nil, yibao.Errorf(yibao.CodeForbidden, "terminal_revoked: terminal %s is revoked", id)
	}
	pub, err := parseTerminalKey(t.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	t.CreatedAt = time.UnixMicro(c).UTC()
	return &t, pub, nil
}

// Challenge is an active liveness challenge: the frames the terminal
// sends must show the face getting closer (or farther) between the first
// and the last.
type Challenge struct {
	ChallengeID string    `json:"challenge_id"`
	Kind        string    `json:"kind"` // closer | farther
	Prompt      string    `json:"prompt"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// NewChallenge issues a one-time challenge to a terminal, valid 60 s.
func (s *Service) NewChallenge(ctx context.Context, terminalID string) (*Challenge, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if _, _, err := s.terminal(ctx, terminalID); err != nil {
		return nil, err
	}
	c := &Challenge{ChallengeID: fmt.Sprintf("CH%016X", randomID()), Kind: "closer", Prompt: "请慢慢靠近摄像头 / move slowly closer to the camera",
		ExpiresAt: s.now().Add(60 * time.Second).UTC()}
	if randomID()%2 == 1 {
		c.Kind, c.Prompt = "farther", "请慢慢远离摄像头 / move slowly back from the camera"
	}
	_, err := s.db.Exec(ctx, `INSERT INTO face_challenges (challenge_id, terminal_id, kind, expires_at) VALUES (?, ?, ?, ?)`, c.ChallengeID, terminalID, c.Kind, micros(c.ExpiresAt))
	return c, err
}

// VerifyRequest is what a terminal sends: 2–5 frames answering a
// challenge, signed with the terminal's key, and who the person says
// they are — an ID number (1:1) or the last four digits of their phone
// (1:N within the institution's region).
type VerifyRequest struct {
	TerminalID  string   `json:"terminal_id"`
	ChallengeID string   `json:"challenge_id"`
	Nonce       string   `json:"nonce"`
	Timestamp   int64    `json:"timestamp"` // unix seconds
	Frames      []string `json:"frames"`    // base64 JPEG/PNG
	IDNumber    string   `json:"id_number,omitempty"`
	PhoneLast4  string   `json:"phone_last4,omitempty"`
	Signature   string   `json:"signature"` // base64 SM2 over SigningString
}

// SigningString is what a terminal signs: its id, the challenge, the
// nonce, the timestamp, the claimed identity and the SM3 of each frame.
func SigningString(r VerifyRequest, frameHashes []string) string {
	return strings.Join([]string{"YBFACE1", r.TerminalID, r.ChallengeID, r.Nonce, strconv.FormatInt(r.Timestamp, 10), r.IDNumber, r.PhoneLast4,
		strings.Join(frameHashes, ",")}, "\n")
}

// Verification is a matched face.
type Verification struct {
	Mode          string    `json:"mode"` // one_to_one | one_to_n
	PsnNo         string    `json:"psn_no"`
	NameMasked    string    `json:"name_masked"`
	IDMasked      string    `json:"id_masked"`
	EcToken       string    `json:"ec_token"`
	ExpiresAt     time.Time `json:"expires_at"`
	MdtrtCertType string    `json:"mdtrt_cert_type"`
	Score         float32   `json:"score"`
	Margin        float32   `json:"margin,omitempty"`
	Liveness      float64   `json:"liveness"`
	Cap           money.Fen `json:"face_only_cap"` // above it, a second factor or the counter
}

var nonceRe = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
var last4Re = regexp.MustCompile(`^[0-9]{4}$`)

// Verify checks a terminal's frames and identifies the person: the
// terminal is registered and signed the request, the nonce and frames
// are new, the challenge is this terminal's, unused and answered, every
// frame shows the same single live face, and it matches the person named
// by the ID number (1:1) or one person in the narrowed gallery (1:N,
// with the margin rule). Nothing of the frames is stored except their
// hashes (against replays); every attempt is recorded.
func (s *Service) Verify(ctx context.Context, r VerifyRequest) (*Verification, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	t, pub, err := s.terminal(ctx, r.TerminalID)
	if err != nil {
		return nil, err
	}
	mode := "one_to_one"
	switch {
	case r.IDNumber != "" && r.PhoneLast4 != "":
		return nil, yibao.FieldError("id_number", "give the ID number (1:1) or the phone's last four digits (1:N), not both")
	case r.IDNumber == "" && !last4Re.MatchString(r.PhoneLast4):
		return nil, yibao.FieldError("phone_last4", "face payment needs a second factor: the ID number, or the phone's last four digits")
	case r.IDNumber == "":
		mode = "one_to_n"
	}
	if !nonceRe.MatchString(r.Nonce) {
		return nil, yibao.FieldError("nonce", "16–64 of [A-Za-z0-9_-]")
	}
	if d := s.now().Unix() - r.Timestamp; d > 60 || d < -60 {
		return nil, yibao.Errorf(yibao.CodeReplay, "stale_request: the terminal's timestamp is %d s off", d)
	}
	if len(r.Frames) < 2 || len(r.Frames) > 5 {
		return nil, yibao.FieldError("frames", "2–5 frames answering the challenge")
	}
	raw := make([][]byte, len(r.Frames))
	hashes := make([]string, len(r.Frames))
	for i, f := range r.Frames {
		b, err := base64.StdEncoding.DecodeString(f)
		if err != nil || len(b) == 0 {
			return nil, yibao.FieldError("frames", "frame %d is not base64", i+1)
		}
		if len(b) > face.MaxImageBytes {
			return nil, yibao.Errorf(yibao.CodeTooLarge, "bad_image: frame %d is larger than %d MiB", i+1, face.MaxImageBytes>>20)
		}
		raw[i] = b
		h := gmcrypto.SM3(b)
		hashes[i] = hex.EncodeToString(h[:])
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || !pub.Verify([]byte(SigningString(r, hashes)), sig) {
		return nil, yibao.Errorf(yibao.CodeBadSignature, "bad_signature: the terminal's signature does not verify")
	}
	// Nonce, frames and challenge: each accepted once, in one transaction.
	var kind string
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		now := s.now()
		if _, err := tx.Exec(ctx, `DELETE FROM face_seen WHERE at < ?`, micros(now.Add(-24*time.Hour))); err != nil {
			return err
		}
		seen := append([]string{"nonce:" + r.Nonce}, prefixed("frame:", hashes)...)
		for _, w := range seen {
			if _, err := tx.Exec(ctx, `INSERT INTO face_seen (terminal_id, what, at) VALUES (?, ?, ?)`, r.TerminalID, w, micros(now)); err != nil {
				if sqlstore.IsUniqueViolation(err) {
					if strings.HasPrefix(w, "frame:") {
						return yibao.Errorf(yibao.CodeReplay, "replayed_frame: a frame was sent before; capture new ones")
					}
					return yibao.Errorf(yibao.CodeReplay, "replayed_request: the nonce was used before")
				}
				return err
			}
		}
		var exp int64
		var used int
		err := tx.QueryRow(ctx, `SELECT kind, expires_at, used FROM face_challenges WHERE challenge_id = ? AND terminal_id = ?`, r.ChallengeID, r.TerminalID).Scan(&kind, &exp, &used)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (used != 0 || exp < micros(now))) {
			return yibao.Errorf(yibao.CodePrecondition, "bad_challenge: the challenge is unknown, used or expired; ask for a new one")
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE face_challenges SET used = 1 WHERE challenge_id = ?`, r.ChallengeID)
		return err
	})
	if err != nil {
		if yibao.ErrorCode(err) == yibao.CodeReplay {
			s.attempt(ctx, t, mode, "", "replay", 0, 0, 0)
		}
		return nil, err
	}
	faces := make([]*face.Face, len(raw))
	for i, b := range raw {
		if faces[i], err = s.embed(ctx, b); err != nil {
			s.attempt(ctx, t, mode, "", "bad_frame", 0, 0, 0)
			return nil, fmt.Errorf("frame %d: %w", i+1, err)
		}
	}
	var live float64
	liveKnown := true
	for i, f := range faces {
		if i > 0 && face.Dot(faces[0].Vector, f.Vector) < s.cfg.SameFrames {
			s.attempt(ctx, t, mode, "", "frames_differ", 0, 0, 0)
			return nil, yibao.Errorf(yibao.CodePrecondition, "liveness_failed: the frames do not show the same person")
		}
		if f.Liveness < 0 {
			liveKnown = false
		}
		live += f.Liveness
	}
	live /= float64(len(faces))
	// The challenge is answered when, between an earlier and a later
	// frame, the face grew (closer) or shrank (farther) by the factor.
	answered := false
	minW, maxW := faces[0].Quality.Width, faces[0].Quality.Width
	for i := range faces {
		for j := i + 1; j < len(faces); j++ {
			a, b := faces[i].Quality.Width, faces[j].Quality.Width
			if (kind == "closer" && b >= a*s.cfg.Closer) || (kind == "farther" && a >= b*s.cfg.Closer) {
				answered = true
			}
		}
		minW, maxW = min(minW, faces[i].Quality.Width), max(maxW, faces[i].Quality.Width)
	}
	if !answered || (liveKnown && live < s.cfg.MinLiveness) {
		s.attempt(ctx, t, mode, "", "liveness_failed", 0, 0, live)
		return nil, yibao.Errorf(yibao.CodePrecondition, "liveness_failed: the face did not move %s as asked (widths %.0f–%.0f px), or did not look live (%.2f); try again", kind, minW, maxW, live)
	}
	probe := face.Normalize(meanVector(faces))
	if err := s.loadGallery(ctx); err != nil {
		return nil, err
	}
	match := s.matchOne
	if mode == "one_to_n" {
		match = s.matchMany
	}
	psn, score, margin, err := match(ctx, t, r, probe, live)
	if err != nil {
		return nil, err
	}
	tok, exp, err := s.tokens.IssueToken(ctx, psn, t.FixmedinsCode, "face:"+t.TerminalID)
	if err != nil {
		return nil, err
	}
	s.attempt(ctx, t, mode, psn, "matched", score, margin, live)
	var nameMasked, idMasked, instKind string
	s.db.QueryRow(ctx, `SELECT name_masked, id_masked FROM persons WHERE psn_no = ?`, psn).Scan(&nameMasked, &idMasked)
	s.db.QueryRow(ctx, `SELECT kind FROM institutions WHERE fixmedins_code = ?`, t.FixmedinsCode).Scan(&instKind)
	cap := s.cfg.CapHospital
	if instKind == "pharmacy" {
		cap = s.cfg.CapPharmacy
	}
	return &Verification{Mode: mode, PsnNo: psn, NameMasked: nameMasked, IDMasked: idMasked, EcToken: tok, ExpiresAt: exp.UTC(), MdtrtCertType: "01", Score: score,
		Margin: margin, Liveness: live, Cap: cap}, nil
}

// templateIDs is the set of template ids of the current space matching
// one condition (a person, or a 1:N scope): the gallery search's filter.
func (s *Service) templateIDs(ctx context.Context, cond string, arg any) (map[int64]bool, error) {
	ids, err := s.db.Strings(ctx, `SELECT CAST(id AS TEXT) FROM face_templates WHERE `+cond+` AND space = ?`, arg, s.emb.Space())
	if err != nil {
		return nil, err
	}
	want := map[int64]bool{}
	for _, id := range ids {
		n, _ := strconv.ParseInt(id, 10, 64)
		want[n] = true
	}
	return want, nil
}

// matchOne is 1:1: the person the ID number names, against their own
// templates. A refusal is recorded.
func (s *Service) matchOne(ctx context.Context, t *Terminal, r VerifyRequest, probe []float32, live float64) (string, float32, float32, error) {
	psn, err := s.reg.PersonByIDNumber(ctx, strings.TrimSpace(r.IDNumber))
	if err != nil {
		s.attempt(ctx, t, "one_to_one", "", "unknown_person", 0, 0, live)
		return "", 0, 0, yibao.Errorf(yibao.CodePrecondition, "face_not_matched: no enrolled face matches")
	}
	want, err := s.templateIDs(ctx, `psn_no = ?`, psn)
	if err != nil {
		return "", 0, 0, err
	}
	ms, err := s.search(probe, 1, func(id int64) bool { return want[id] })
	if err != nil {
		return "", 0, 0, err
	}
	if len(ms) == 0 || ms[0].Score < s.cfg.Match1to1 {
		var score float32
		if len(ms) > 0 {
			score = ms[0].Score
		}
		s.attempt(ctx, t, "one_to_one", psn, "not_matched", score, 0, live)
		return "", 0, 0, yibao.Errorf(yibao.CodePrecondition, "face_not_matched: no enrolled face matches; use the e-certificate code or the ID card")
	}
	return psn, ms[0].Score, 0, nil
}

// matchMany is 1:N inside the gallery the institution's region and the
// phone digits narrow, with the margin over the next person. A refusal is
// recorded.
func (s *Service) matchMany(ctx context.Context, t *Terminal, r VerifyRequest, probe []float32, live float64) (string, float32, float32, error) {
	var admdvs string
	if err := s.db.QueryRow(ctx, `SELECT admdvs FROM institutions WHERE fixmedins_code = ?`, t.FixmedinsCode).Scan(&admdvs); err != nil {
		return "", 0, 0, err
	}
	want, err := s.templateIDs(ctx, `scope = ?`, s.scopeOf(admdvs, r.PhoneLast4))
	if err != nil {
		return "", 0, 0, err
	}
	ms, err := s.search(probe, 2, func(id int64) bool { return want[id] })
	if err != nil {
		return "", 0, 0, err
	}
	// Two templates of the same person are not rivals: keep the best per person.
	if ms, err = s.distinctPersons(ctx, ms, probe, want); err != nil {
		return "", 0, 0, err
	}
	var score, margin float32
	if len(ms) > 0 {
		score, margin = ms[0].Score, gallery.Margin(ms)
	}
	best, ok, why := gallery.Rule{Threshold: s.cfg.Match1toN, Margin: s.cfg.Margin}.Decide(ms)
	if !ok {
		s.attempt(ctx, t, "one_to_n", "", "not_matched:"+why, score, margin, live)
		return "", 0, 0, yibao.Errorf(yibao.CodePrecondition, "face_not_matched: no single enrolled face matches (%s); use the ID number, the e-certificate code or the card", why)
	}
	var psn string
	if err := s.db.QueryRow(ctx, `SELECT psn_no FROM face_templates WHERE id = ?`, best.ID).Scan(&psn); err != nil {
		return "", 0, 0, err
	}
	return psn, score, margin, nil
}

// distinctPersons re-searches when the two best templates belong to one
// person, so the margin compares different people.
func (s *Service) distinctPersons(ctx context.Context, ms []gallery.Match, probe []float32, want map[int64]bool) ([]gallery.Match, error) {
	if len(ms) < 2 {
		return ms, nil
	}
	owner := func(id int64) string {
		var p string
		s.db.QueryRow(ctx, `SELECT psn_no FROM face_templates WHERE id = ?`, id).Scan(&p)
		return p
	}
	first := owner(ms[0].ID)
	if owner(ms[1].ID) != first {
		return ms, nil
	}
	all, err := s.search(probe, len(want), func(id int64) bool { return want[id] })
	if err != nil {
		return nil, err
	}
	out := []gallery.Match{all[0]}
	for _, m := range all[1:] {
		if owner(m.ID) != first {
			out = append(out, m)
			break
		}
	}
	return out, nil
}

// attempt records a verification, matched or not, without any image.
func (s *Service) attempt(ctx context.Context, t *Terminal, mode, psn, outcome string, score, margin float32, live float64) {
	_, err := s.db.Exec(ctx, `INSERT INTO face_verifications (id, terminal_id, fixmedins_code, mode, psn_no, outcome, score, margin, liveness, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		fmt.Sprintf("FV%016X", randomID()), t.TerminalID, t.FixmedinsCode, mode, psn, outcome, float64(score), float64(margin), live, micros(s.now()))
	if err != nil {
		s.log.Error("recording a face verification", "err", err)
	}
}

func prefixed(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}

func meanVector(fs []*face.Face) []float32 {
	v := make([]float32, len(fs[0].Vector))
	for _, f := range fs {
		for i, x := range f.Vector {
			v[i] += x
		}
	}
	return v
}

// loadGallery decrypts every template of the current space into memory
// once; enrolments and deletions keep it current.
func (s *Service) loadGallery(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return nil
	}
	var g *gallery.Index
	rows, err := s.db.Query(ctx, `SELECT id, psn_no, sealed FROM face_templates WHERE space = ?`, s.emb.Space())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var psn string
		var sealed []byte
		if err := rows.Scan(&id, &psn, &sealed); err != nil {
			return err
		}
		b, err := s.keys.Open(sealed, templateAAD(psn, id))
		if err != nil {
			return fmt.Errorf("face template %d does not open: %w", id, err)
		}
		v := bytesVector(b)
		if g == nil {
			g = gallery.New(len(v))
		}
		if err := g.Add(id, v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.gallery, s.loaded = g, true
	return nil
}

func (s *Service) search(q []float32, k int, filter func(int64) bool) ([]gallery.Match, error) {
	s.mu.Lock()
	g := s.gallery
	s.mu.Unlock()
	if g == nil || g.Len() == 0 {
		return nil, nil
	}
	return g.Search(q, k, filter)
}

// FrameDigest is the SM3 of a frame as a terminal signs it (hex).
func FrameDigest(b []byte) string {
	h := gmcrypto.SM3(b)
	return hex.EncodeToString(h[:])
}

// parseTerminalKey reads an SM2 public key in PEM, or as the hex of its
// uncompressed point (what a browser terminal's sm-crypto produces).
func parseTerminalKey(s string) (*gmcrypto.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		return gmcrypto.ParsePublicKeyPEM([]byte(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return gmcrypto.ParsePublicKey(b)
}

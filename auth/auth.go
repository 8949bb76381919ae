// Package auth authenticates callers: staff with passwords and bearer
// sessions, and institution systems with signed requests (HMAC-SM3 or SM2)
// carrying a timestamp and a one-time nonce. It turns both into a
// yibao.Principal; what a principal may do is decided by each service.
package auth

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"regexp"
	"sync"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// Service is the authentication service.
type Service struct {
	db   *sqlstore.DB
	keys *gmcrypto.Keyring
	now  func() time.Time

	// Audit records key changes in the audit trail (nil: none).
	Audit *audit.Writer

	// PasswordIterations is the PBKDF2-SM3 cost for new passwords.
	PasswordIterations int
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration
	// Window is how far a signed request's timestamp may be from now.
	Window time.Duration

	failMu sync.Mutex
	fails  map[string][]time.Time // username → recent failed logins
}

// New returns the service.
func New(db *sqlstore.DB, keys *gmcrypto.Keyring) *Service {
	return &Service{db: db, keys: keys, now: time.Now, PasswordIterations: gmcrypto.DefaultPasswordIterations,
		SessionTTL: 12 * time.Hour, Window: 5 * time.Minute, fails: map[string][]time.Time{}}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

var usernameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,63}$`)

// NewUser is the input to CreateUser.
type NewUser struct {
	Username      string     `json:"username"`
	Password      string     `json:"password"`
	Role          yibao.Role `json:"role"`
	FixmedinsCode string     `json:"fixmedins_code,omitempty"`
	DisplayName   string     `json:"display_name"`
}

// User is a staff account as the API shows it (never the password hash).
type User struct {
	Username      string     `json:"username"`
	Role          yibao.Role `json:"role"`
	FixmedinsCode string     `json:"fixmedins_code,omitempty"`
	DisplayName   string     `json:"display_name"`
	Disabled      bool       `json:"disabled"`
	CreatedAt     time.Time  `json:"created_at"`
}

// CreateUser adds a staff account. Administrators have no institution;
// cashiers and HIS operators must name theirs. Errors: invalid_argument,
// conflict, permission_denied.
func (s *Service) CreateUser(ctx context.Context, u NewUser) (*User, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if !usernameRe.MatchString(u.Username) {
		return nil, yibao.FieldError("username", "must be 3–64 lower-case letters, digits, '.', '_' or '-'")
	}
	if len(u.Password) < 8 || len(u.Password) > 128 {
		return nil, yibao.FieldError("password", "must be 8–128 characters")
	}
	if !yibao.ValidRole(u.Role) {
		return nil, yibao.FieldError("role", "must be admin, cashier or his")
	}
	if u.Role == yibao.RoleAdmin && u.FixmedinsCode != "" {
		return nil, yibao.FieldError("fixmedins_code", "an administrator belongs to no institution")
	}
	if u.Role != yibao.RoleAdmin && u.FixmedinsCode == "" {
		return nil, yibao.FieldError("fixmedins_code", "institution staff must name their institution")
	}
	if u.DisplayName == "" {
		u.DisplayName = u.Username
	}
	hash, err := gmcrypto.HashPassword(u.Password, s.PasswordIterations)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if u.FixmedinsCode != "" {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM institutions WHERE fixmedins_code = ?`, u.FixmedinsCode).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return yibao.FieldError("fixmedins_code", "institution %s is not registered", u.FixmedinsCode)
			}
		}
		var code any
		if u.FixmedinsCode != "" {
			code = u.FixmedinsCode
		}
		_, err := tx.Exec(ctx, `INSERT INTO users (username, password_hash, role, fixmedins_code, display_name, disabled, created_at)
			VALUES (?, ?, ?, ?, ?, 0, ?)`, u.Username, hash, string(u.Role), code, u.DisplayName, now.UnixMicro())
		if sqlstore.IsUniqueViolation(err) {
			return yibao.Errorf(yibao.CodeConflict, "user %s already exists", u.Username)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &User{Username: u.Username, Role: u.Role, FixmedinsCode: u.FixmedinsCode, DisplayName: u.DisplayName, CreatedAt: now}, nil
}

// Users lists staff accounts; administrators only.
func (s *Service) Users(ctx context.Context) ([]User, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT username, role, COALESCE(fixmedins_code, ''), display_name, disabled, created_at FROM users ORDER BY username`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []User{}
	for rows.Next() {
		var u User
		var disabled int
		var at int64
		if err := rows.Scan(&u.Username, &u.Role, &u.FixmedinsCode, &u.DisplayName, &disabled, &at); err != nil {
			return nil, err
		}
		u.Disabled, u.CreatedAt = disabled != 0, time.UnixMicro(at).UTC()
		list = append(list, u)
	}
	return list, rows.Err()
}

// Session is the result of a login.
type Session struct {
	Token     string           `json:"token"`
	ExpiresAt time.Time        `json:"expires_at"`
	Principal *yibao.Principal `json:"principal"`
}

const (
	maxFailures   = 5
	failureWindow = 15 * time.Minute
)

// Login checks a password and opens a session. Five failures within 15
// minutes lock the account for the rest of that window. Errors:
// unauthenticated (one message for unknown user and wrong password),
// rate_limited.
func (s *Service) Login(ctx context.Context, username, password string) (*Session, error) {
	now := s.now()
	if s.lockedOut(username, now) {
		return nil, yibao.Errorf(yibao.CodeRateLimited, "too many failed logins; try again in 15 minutes")
	}
	var hash, role, code, display string
	var disabled int
	err := s.db.QueryRow(ctx, `SELECT password_hash, role, COALESCE(fixmedins_code, ''), display_name, disabled FROM users WHERE username = ?`,
		username).Scan(&hash, &role, &code, &display, &disabled)
	if err != nil && err != sql.ErrNoRows {
		return nil, err
	}
	ok := false
	if err == nil {
		ok, _ = gmcrypto.CheckPassword(hash, password)
	} else {
		// Spend the same time on unknown users as on wrong passwords.
		gmcrypto.CheckPassword(dummyHash(s.PasswordIterations), password)
	}
	if !ok || disabled != 0 {
		s.recordFailure(username, now)
		return nil, yibao.Errorf(yibao.CodeUnauthenticated, "wrong username or password")
	}
	s.clearFailures(username)
	raw := make([]byte, 32)
	rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	th := gmcrypto.SM3([]byte(token))
	exp := now.Add(s.SessionTTL).UTC().Truncate(time.Second)
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE expires_at < ?`, now.UnixMicro()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sessions (token_hash, username, expires_at, created_at) VALUES (?, ?, ?, ?)`,
			th[:], username, exp.UnixMicro(), now.UnixMicro())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Session{Token: token, ExpiresAt: exp, Principal: &yibao.Principal{Kind: yibao.PrincipalUser, Subject: username,
		Role: yibao.Role(role), Institution: code, DisplayName: display}}, nil
}

var (
	dummyOnce sync.Once
	dummy     string
)

func dummyHash(iter int) string {
	dummyOnce.Do(func() { dummy, _ = gmcrypto.HashPassword("not a password", iter) })
	return dummy
}

func (s *Service) lockedOut(user string, now time.Time) bool {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	recent := s.fails[user][:0]
	for _, t := range s.fails[user] {
		if now.Sub(t) < failureWindow {
			recent = append(recent, t)
		}
	}
	s.fails[user] = recent
	return len(recent) >= maxFailures
}

func (s *Service) recordFailure(user string, now time.Time) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if len(s.fails) > 100_000 { // bound memory under a spray of usernames
		s.fails = map[string][]time.Time{}
	}
	s.fails[user] = append(s.fails[user], now)
}

func (s *Service) clearFailures(user string) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	delete(s.fails, user)
}

// Authenticate resolves a bearer token. Errors: unauthenticated.
func (s *Service) Authenticate(ctx context.Context, token string) (*yibao.Principal, error) {
	th := gmcrypto.SM3([]byte(token))
	var p yibao.Principal
	var exp int64
	var disabled int
	err := s.db.QueryRow(ctx, `SELECT u.username, u.role, COALESCE(u.fixmedins_code, ''), u.display_name, u.disabled, s.expires_at
		FROM sessions s JOIN users u ON u.username = s.username WHERE s.token_hash = ?`, th[:]).
		Scan(&p.Subject, &p.Role, &p.Institution, &p.DisplayName, &disabled, &exp)
	if err == sql.ErrNoRows || (err == nil && (exp < s.now().UnixMicro() || disabled != 0)) {
		return nil, yibao.Errorf(yibao.CodeUnauthenticated, "the session is unknown or has expired; log in again")
	}
	if err != nil {
		return nil, err
	}
	p.Kind = yibao.PrincipalUser
	return &p, nil
}

// Logout ends the session of token; unknown tokens are ignored.
func (s *Service) Logout(ctx context.Context, token string) error {
	th := gmcrypto.SM3([]byte(token))
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE token_hash = ?`, th[:])
		return err
	})
}

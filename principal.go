package yibao

import "context"

// Role is what a principal may do.
type Role string

// Roles.
const (
	RoleAdmin   Role = "admin"   // bureau administrator: registry, policy, audit
	RoleCashier Role = "cashier" // institution staff at the counter
	RoleHIS     Role = "his"     // an institution's HIS system or its operator
	RoleChannel Role = "channel" // an e-certificate channel (official app, WeChat, Alipay, …)
)

// ValidRole reports whether r is a known staff role.
func ValidRole(r Role) bool { return r == RoleAdmin || r == RoleCashier || r == RoleHIS }

// PrincipalKind says how a principal authenticated.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalUser    PrincipalKind = "user"    // a person logged in with a password (bearer session)
	PrincipalAPIKey  PrincipalKind = "api_key" // an institution system signing requests with its key
	PrincipalSystem  PrincipalKind = "system"  // the platform itself: seeding, migrations, jobs
	PrincipalChannel PrincipalKind = "channel" // an e-certificate channel signing with its SM2 key
)

// System returns the platform's own administrator principal, used by
// seeding and background jobs, never by a request.
func System(name string) *Principal {
	return &Principal{Kind: PrincipalSystem, Subject: name, Role: RoleAdmin, DisplayName: "system/" + name}
}

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind        PrincipalKind `json:"kind"`
	Subject     string        `json:"subject"` // username or key id
	Role        Role          `json:"role"`
	Institution string        `json:"fixmedins_code,omitempty"` // set for institution staff and keys
	DisplayName string        `json:"display_name,omitempty"`
}

// ID is a stable identifier of the principal for idempotency and audit.
func (p *Principal) ID() string { return string(p.Kind) + ":" + p.Subject }

// IsAdmin reports whether p is a bureau administrator.
func (p *Principal) IsAdmin() bool { return p != nil && p.Role == RoleAdmin }

// ActsFor reports whether p may act for the institution code: administrators
// for every institution, staff and keys only for their own.
func (p *Principal) ActsFor(fixmedinsCode string) bool {
	if p == nil {
		return false
	}
	return p.Role == RoleAdmin || (p.Institution != "" && p.Institution == fixmedinsCode)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// RequireAdmin returns a permission error unless ctx carries an administrator.
func RequireAdmin(ctx context.Context) error {
	p := PrincipalFrom(ctx)
	if p == nil {
		return Errorf(CodeUnauthenticated, "authentication required")
	}
	if !p.IsAdmin() {
		return Errorf(CodeForbidden, "this action needs a bureau administrator")
	}
	return nil
}

// RequirePrincipal returns an error unless ctx carries a principal.
func RequirePrincipal(ctx context.Context) (*Principal, error) {
	p := PrincipalFrom(ctx)
	if p == nil {
		return nil, Errorf(CodeUnauthenticated, "authentication required")
	}
	return p, nil
}

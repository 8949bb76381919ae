package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"yibao/audit"
	"yibao/sqlstore"
)

// AuditKindAccess is the audit-entry kind of a refused access: an
// authenticated caller asked for something it may not have (MLPS 2.0
// level 3 counts these as security events to be audited).
const AuditKindAccess = "access"

// tenantRoutes are the routes whose path (for ledger transfers the query,
// for mobile payments the body) names one institution's or one person's
// object. Services answer not_found rather than permission_denied for
// another tenant's object, so that ids cannot be probed; on these routes
// such a 404 to anyone but an administrator is therefore audited like a
// 403. Other 404s (a catalog code, a region, a policy version) are plain
// absences.
var tenantRoutes = []string{
	"/api/v1/visits/{", "/api/v1/settlements/{", "/api/v1/payments/{", "/api/v1/persons/{",
	"/api/v1/institutions/{", "/api/v1/ecert/", "/api/v1/events/{", "/api/v1/ledger/", "/app/api/",
	"/api/v1/mobile-payments", // the visit is named in the body
}

var pathParamRe = regexp.MustCompile(`\{([a-z_]+)\}`)

// pseudonymous parameters name a person or one of their devices; the log
// is public, so they are recorded as references (audit.Writer.Person).
var pseudonymous = map[string]bool{"psn_no": true, "cert_id": true, "binding_id": true, "activation_id": true,
	"agreement_no": true, "holder": true, "member": true}

// auditRefusal records a refused access — every 403; a 404 on a tenant
// route to a caller who is not an administrator; a 401 to a caller who did
// authenticate (a credential inside the request, such as another
// institution's ecToken, was refused) — as an audit entry of kind
// "access": who (the principal, or the patient session's binding as a
// reference), the route, the ids asked for, the answer. Requests nobody
// authenticated are not recorded (nobody to hold to account; they are
// logged and counted like every request), nor are the national
// interface's refusals, which travel inside an HTTP 200 envelope.
func (s *Server) auditRefusal(r *http.Request, rt route, rec *recorder) {
	switch {
	case s.auditWriter == nil:
		return
	case rec.status == http.StatusUnauthorized && rec.principal != nil:
		// An authenticated caller refused a credential it presented (another
		// institution's ecToken).
	case rec.status != http.StatusForbidden && rec.status != http.StatusNotFound:
		return
	}
	actor, admin, inst := "", false, ""
	if p := rec.principal; p != nil {
		actor, admin, inst = p.ID(), p.IsAdmin(), p.Institution
	} else if strings.HasPrefix(rt.path, "/app/api/") && s.ecert != nil {
		if ck, err := r.Cookie(appCookie); err == nil {
			if id, err := s.ecert.AppSession(ck.Value); err == nil {
				actor = "app:" + s.reference("binding_id", id)
			}
		}
	}
	if actor == "" || (rec.status == http.StatusNotFound && (admin || !isTenantRoute(rt.path))) {
		return
	}
	code := map[int]string{http.StatusUnauthorized: "unauthenticated", http.StatusForbidden: "permission_denied", http.StatusNotFound: "not_found"}[rec.status]
	ids := map[string]any{}
	object := ""
	for _, m := range pathParamRe.FindAllStringSubmatch(rt.path, -1) {
		v := s.reference(m[1], r.PathValue(m[1]))
		ids[m[1]] = v
		if object == "" {
			object = v
		}
	}
	for _, q := range []string{"fixmedins_code", "user_data", "psn_no"} {
		if v := r.URL.Query().Get(q); v != "" {
			ids["query."+q] = s.reference(q, v)
			if object == "" {
				object = ids["query."+q].(string)
			}
		}
	}
	if object == "" {
		object = rt.method + " " + rt.path
	}
	data := map[string]any{"method": rt.method, "route": rt.path, "status": rec.status, "code": code,
		"request_id": RequestID(r.Context()), "ids": ids}
	if inst != "" {
		data["actor_institution"] = inst
	}
	now := s.now()
	b := make([]byte, 8)
	rand.Read(b)
	// The id is made here, never from the caller's X-Request-Id: a caller
	// repeating one must not be able to fold its refusals into one entry.
	e := audit.Entry{ID: "access:" + strconv.FormatInt(now.UnixMicro(), 10) + ":" + hex.EncodeToString(b), Kind: AuditKindAccess,
		At: audit.Stamp(now), Actor: actor, Subject: "access:" + object, Data: data}
	ctx := context.WithoutCancel(r.Context())
	if err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return s.auditWriter.Record(ctx, tx, e) }); err != nil {
		s.log.ErrorContext(ctx, "refused access not audited", "request_id", RequestID(ctx), "route", rt.path, "err", err)
	}
}

func isTenantRoute(path string) bool {
	for _, p := range tenantRoutes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// reference returns an id as the audit log may show it: persons and their
// devices as salted references, everything else as given.
func (s *Server) reference(name, v string) string {
	if psn, ok := strings.CutPrefix(v, "acct:"); ok && name == "id" {
		return "acct:" + s.auditWriter.Person(psn) // a personal account is named by its person
	}
	switch {
	case v == "" || !pseudonymous[name]:
		return v
	case name == "psn_no" || name == "holder" || name == "member":
		return s.auditWriter.Person(v) // as every other entry names a person
	}
	return "ref:" + strings.TrimPrefix(s.auditWriter.Person(name+"/"+v), "psn:")
}

package httpapi

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/sqlstore"
)

// Dual control of key changes (maker-checker). A route marked dual, called
// by a staff user, is not run: the request is stored as an approval and
// answered 202. Another administrator approves it; the stored request then
// runs through the same route as the approver (their session, their
// principal), and its answer — e.g. a new key's secret, shown once — goes
// to the approver and is kept with the approval. The preparer cannot
// approve their own request; both steps are audit entries.

// approvedKey marks an internal request replaying an approved change.
type approvedKey struct{}

// Approval is a stored key change.
type Approval struct {
	ApprovalID   string          `json:"approval_id"`
	Method       string          `json:"method"`
	Path         string          `json:"path"`
	Route        string          `json:"route"`
	Body         json.RawMessage `json:"body,omitempty"`
	Status       string          `json:"status"`
	PreparedBy   string          `json:"prepared_by"`
	PreparedAt   time.Time       `json:"prepared_at"`
	DecidedBy    string          `json:"decided_by,omitempty"`
	DecidedAt    *time.Time      `json:"decided_at,omitempty"`
	Note         string          `json:"note,omitempty"`
	ResultStatus int             `json:"result_status,omitempty"`
	Result       json.RawMessage `json:"result,omitempty"`
}

func (s *Server) approvalRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/approvals", access: staff, h: s.listApprovals},
		{method: "POST", path: "/api/v1/approvals/{approval_id}/approve", access: staff, h: s.approve},
		{method: "POST", path: "/api/v1/approvals/{approval_id}/reject", access: staff, h: s.rejectApproval},
	}
}

// prepareApproval stores the call instead of running it.
func (s *Server) prepareApproval(rt route) func(c *call) error {
	return func(c *call) error {
		if err := yibao.RequireAdmin(c.r.Context()); err != nil {
			return err
		}
		b := make([]byte, 8)
		rand.Read(b)
		a := Approval{ApprovalID: "AP" + strings.ToUpper(hex.EncodeToString(b)), Method: c.r.Method, Path: c.r.URL.RequestURI(), Route: rt.method + " " + rt.path,
			Status: "prepared", PreparedBy: c.principal.ID(), PreparedAt: s.now().UTC()}
		body := string(c.body)
		if strings.TrimSpace(body) != "" && json.Valid(c.body) {
			a.Body = json.RawMessage(c.body)
		}
		err := s.db.WriteTx(c.r.Context(), func(tx *sqlstore.Tx) error {
			if _, err := tx.Exec(c.r.Context(), `INSERT INTO approvals (approval_id, method, path, route, body, status, prepared_by, prepared_at) VALUES (?, ?, ?, ?, ?, 'prepared', ?, ?)`,
				a.ApprovalID, a.Method, a.Path, a.Route, body, a.PreparedBy, a.PreparedAt.UnixMicro()); err != nil {
				return err
			}
			return s.approvalEntry(c.r.Context(), tx, &a, "prepared")
		})
		if err != nil {
			return err
		}
		return c.json(http.StatusAccepted, map[string]any{"approval": a,
			"message": "a key change needs a second administrator: POST /api/v1/approvals/" + a.ApprovalID + "/approve"})
	}
}

func (s *Server) approvalEntry(ctx context.Context, tx *sqlstore.Tx, a *Approval, event string) error {
	actor := ""
	if p := yibao.PrincipalFrom(ctx); p != nil {
		actor = p.ID()
	}
	return s.auditWriter.Record(ctx, tx, audit.Entry{ID: "approval:" + a.ApprovalID + ":" + event, Kind: audit.KindKey, At: audit.Stamp(s.now()), Actor: actor,
		Subject: a.ApprovalID, Data: map[string]any{"event": "key_change_" + event, "route": a.Route, "path": a.Path, "prepared_by": a.PreparedBy,
			"decided_by": a.DecidedBy, "result_status": a.ResultStatus}})
}

const approvalCols = `approval_id, method, path, route, body, status, prepared_by, prepared_at, decided_by, decided_at, note, result_status, result_body`

func scanApproval(sc interface{ Scan(...any) error }) (*Approval, error) {
	var a Approval
	var body, result string
	var p, d int64
	if err := sc.Scan(&a.ApprovalID, &a.Method, &a.Path, &a.Route, &body, &a.Status, &a.PreparedBy, &p, &a.DecidedBy, &d, &a.Note, &a.ResultStatus, &result); err != nil {
		return nil, err
	}
	if json.Valid([]byte(body)) && body != "" {
		a.Body = json.RawMessage(body)
	}
	if json.Valid([]byte(result)) && result != "" {
		a.Result = json.RawMessage(result)
	}
	a.PreparedAt = time.UnixMicro(p).UTC()
	if d != 0 {
		t := time.UnixMicro(d).UTC()
		a.DecidedAt = &t
	}
	return &a, nil
}

func (s *Server) listApprovals(c *call) error {
	if err := yibao.RequireAdmin(c.r.Context()); err != nil {
		return err
	}
	q, args := `SELECT `+approvalCols+` FROM approvals`, []any{}
	if st := c.query("status"); st != "" {
		q, args = q+` WHERE status = ?`, append(args, st)
	}
	rows, err := s.db.Query(c.r.Context(), q+` ORDER BY prepared_at DESC LIMIT 100`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	out := []Approval{}
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return err
		}
		a.Result = nil // a new key's secret is shown once, to the approver
		out = append(out, *a)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) loadApproval(ctx context.Context, id string) (*Approval, error) {
	a, err := scanApproval(s.db.QueryRow(ctx, `SELECT `+approvalCols+` FROM approvals WHERE approval_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "approval %s not found", id)
	}
	return a, err
}

// approve runs a prepared key change as the approving administrator.
func (s *Server) approve(c *call) error {
	ctx := c.r.Context()
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	a, err := s.loadApproval(ctx, c.path("approval_id"))
	if err != nil {
		return err
	}
	if a.Status != "prepared" {
		return yibao.Errorf(yibao.CodePrecondition, "approval %s is %s", a.ApprovalID, a.Status)
	}
	if a.PreparedBy == c.principal.ID() {
		return yibao.Errorf(yibao.CodeForbidden, "dual_control: %s prepared this change; another administrator approves it", a.PreparedBy)
	}
	now := s.now()
	res, err := s.db.Exec(ctx, `UPDATE approvals SET status = 'executing', decided_by = ?, decided_at = ? WHERE approval_id = ? AND status = 'prepared'`,
		c.principal.ID(), now.UnixMicro(), a.ApprovalID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return yibao.Errorf(yibao.CodeConflict, "approval %s was decided meanwhile", a.ApprovalID)
	}
	// Replay the stored request through the route, as the approver.
	req, err := http.NewRequestWithContext(context.WithValue(context.WithoutCancel(ctx), approvedKey{}, a.ApprovalID), a.Method, a.Path, strings.NewReader(string(a.Body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", c.r.Header.Get("Authorization"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, "approval-"+a.ApprovalID)
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, req)
	a.Status, a.DecidedBy, a.ResultStatus = "approved", c.principal.ID(), rec.Code
	if rec.Code >= 300 {
		a.Status = "failed"
	}
	result := rec.Body.Bytes()
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE approvals SET status = ?, result_status = ?, result_body = ? WHERE approval_id = ?`,
			a.Status, a.ResultStatus, string(result), a.ApprovalID); err != nil {
			return err
		}
		return s.approvalEntry(ctx, tx, a, a.Status)
	})
	if err != nil {
		return err
	}
	if json.Valid(result) {
		a.Result = json.RawMessage(result)
	}
	t := now.UTC()
	a.DecidedAt = &t
	return c.json(http.StatusOK, a)
}

func (s *Server) rejectApproval(c *call) error {
	ctx := c.r.Context()
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	var in struct {
		Note string `json:"note"`
	}
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	a, err := s.loadApproval(ctx, c.path("approval_id"))
	if err != nil {
		return err
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE approvals SET status = 'rejected', decided_by = ?, decided_at = ?, note = ? WHERE approval_id = ? AND status = 'prepared'`,
			c.principal.ID(), s.now().UnixMicro(), in.Note, a.ApprovalID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodePrecondition, "approval %s is %s", a.ApprovalID, a.Status)
		}
		t := s.now().UTC()
		a.Status, a.DecidedBy, a.Note, a.DecidedAt = "rejected", c.principal.ID(), in.Note, &t
		return s.approvalEntry(ctx, tx, a, "rejected")
	})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, a)
}

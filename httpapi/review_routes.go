package httpapi

import (
	"net/http"

	"yibao/money"
	"yibao/review"
)

// reviewRoutes are smart review's rules and its review queue.
func (s *Server) reviewRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/review/rules", access: anyone, h: s.reviewRules},
		{method: "POST", path: "/api/v1/review/rules", access: staff, idempotent: true, h: s.addReviewRule},
		{method: "GET", path: "/api/v1/review/alerts", access: anyone, h: s.reviewAlerts},
		{method: "POST", path: "/api/v1/review/alerts/{id}/decide", access: staff, idempotent: true, h: s.decideAlert},
		{method: "GET", path: "/api/v1/review/recoveries", access: anyone, h: s.recoveries},
		{method: "POST", path: "/api/v1/review/recoveries", access: staff, idempotent: true, h: s.proposeRecovery},
		{method: "POST", path: "/api/v1/review/recoveries/{id}/decide", access: staff, idempotent: true, h: s.decideRecovery},
		{method: "GET", path: "/api/v1/review/report", access: anyone, h: s.reviewReport},
		{method: "PUT", path: "/api/v1/review/actions/{kind}", access: staff, idempotent: true, h: s.setReviewAction},
	}
}

func (s *Server) reviewRules(c *call) error {
	own, err := s.review.Rules(c.r.Context())
	if err != nil {
		return err
	}
	actions, err := s.review.Actions(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": own, "library": s.review.Stats(), "actions": actions})
}

func (s *Server) addReviewRule(c *call) error {
	var in review.Rule
	if err := c.decode(&in); err != nil {
		return err
	}
	r, err := s.review.AddRule(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, r)
}

func (s *Server) reviewAlerts(c *call) error {
	n, err := c.limit()
	if err != nil {
		return err
	}
	out, err := s.review.Alerts(c.r.Context(), c.query("status"), n)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) decideAlert(c *call) error {
	var in struct {
		Status string `json:"status"`
		Note   string `json:"note"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := s.review.Decide(c.r.Context(), c.path("id"), in.Status, in.Note); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]string{"id": c.path("id"), "status": in.Status})
}

func (s *Server) recoveries(c *call) error {
	out, err := s.review.Recoveries(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) proposeRecovery(c *call) error {
	var in struct {
		AlertID       string    `json:"alert_id"`
		FixmedinsCode string    `json:"fixmedins_code"`
		FundAccount   string    `json:"fund_account"`
		Amount        money.Fen `json:"amount"`
		Reason        string    `json:"reason"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	r, err := s.review.ProposeRecovery(c.r.Context(), in.AlertID, in.FixmedinsCode, in.FundAccount, in.Amount, in.Reason)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, r)
}

func (s *Server) decideRecovery(c *call) error {
	var in struct {
		Approve bool `json:"approve"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	r, err := s.review.DecideRecovery(c.r.Context(), c.path("id"), in.Approve)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, r)
}

func (s *Server) reviewReport(c *call) error {
	r, err := s.review.MonthlyReport(c.r.Context(), c.query("fixmedins_code"), c.query("month"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, r)
}

func (s *Server) setReviewAction(c *call) error {
	var in struct {
		Action string `json:"action"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := s.review.SetAction(c.r.Context(), c.path("kind"), in.Action); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]string{"kind": c.path("kind"), "action": in.Action})
}

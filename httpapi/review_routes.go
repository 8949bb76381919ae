package httpapi

import (
	"net/http"

	"yibao/review"
)

// reviewRoutes are smart review's rules and its review queue.
func (s *Server) reviewRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/review/rules", access: anyone, h: s.reviewRules},
		{method: "POST", path: "/api/v1/review/rules", access: staff, idempotent: true, h: s.addReviewRule},
		{method: "GET", path: "/api/v1/review/alerts", access: anyone, h: s.reviewAlerts},
		{method: "POST", path: "/api/v1/review/alerts/{id}/decide", access: staff, idempotent: true, h: s.decideAlert},
	}
}

func (s *Server) reviewRules(c *call) error {
	own, err := s.review.Rules(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": own, "library": s.review.Stats()})
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

package httpapi

import "net/http"

func (s *Server) deliveryRoutes() []route {
	return []route{
		{method: "PUT", path: "/api/v1/institutions/{code}/webhook", access: anyone, idempotent: true, h: s.setWebhook},
		{method: "GET", path: "/api/v1/events", access: anyone, h: s.listEvents},
		{method: "POST", path: "/api/v1/events/{id}/retry", access: anyone, idempotent: true, h: s.retryEvent},
	}
}

func (s *Server) setWebhook(c *call) error {
	var in struct {
		URL string `json:"url"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	w, err := s.delivery.SetWebhook(c.r.Context(), c.path("code"), in.URL)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, w)
}

func (s *Server) listEvents(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	status := c.query("status")
	if status == "" {
		status = "dead"
	}
	list, err := s.delivery.Events(c.r.Context(), status, limit)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) retryEvent(c *call) error {
	if err := s.delivery.Retry(c.r.Context(), c.path("id")); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]string{"id": c.path("id"), "status": "pending"})
}

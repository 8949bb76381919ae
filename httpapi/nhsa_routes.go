package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"yibao"
	"yibao/nhsa"
)

// The national interface lives at the path HIS systems already call. Its
// answers are always the NHSA envelope with HTTP 200 — infcode -1 carries
// every refusal, authentication included — because that is what HIS
// client code checks.
func (s *Server) nhsaRoutes() []route {
	return []route{
		{method: "POST", path: "/fsi/api/rsfComIfsService/callService", access: public, maxBody: 1 << 20, h: s.nhsaCall, refuse: nhsaRefuse},
		{method: "POST", path: "/fsi/api/rsfComIfsService/callService/{infno}", access: public, maxBody: 1 << 20, h: s.nhsaCall, refuse: nhsaRefuse},
	}
}

func (s *Server) nhsaCall(c *call) error {
	ctx := c.r.Context()
	p, authErr := s.authenticate(c.r, c.body)
	if authErr == nil {
		ctx = yibao.WithPrincipal(ctx, p)
	}
	resp := s.nhsa.Handle(ctx, c.body, c.path("infno"))
	if authErr != nil && resp.Infcode != 0 {
		resp.ErrMsg = "认证失败 (" + string(yibao.ErrorCode(authErr)) + "): " + yibao.ErrorMessage(authErr)
	}
	if f, ok := resp.Output.(*nhsa.File); ok && resp.Infcode == 0 {
		c.w.Header().Set("Content-Disposition", `attachment; filename="`+f.Name+`"`)
		return c.raw(http.StatusOK, "application/octet-stream", f.Content)
	}
	c.status = http.StatusOK
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(c.w)
	enc.SetEscapeHTML(false)
	return enc.Encode(resp)
}

// nhsaRefuse answers a request refused before it was read (too large,
// say) as the national interface answers everything: an envelope with
// infcode -1 and HTTP 200.
func nhsaRefuse(w http.ResponseWriter, err error) int {
	now := time.Now().In(yibao.ChinaTime)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(nhsa.Response{Infcode: -1, RefmsgTime: now.Format("20060102150405"), RespondTime: now.Format("20060102150405"),
		ErrMsg: string(yibao.ErrorCode(err)) + ": " + yibao.ErrorMessage(err)})
	return http.StatusOK
}

// mobileRoutes are the mobile-payment center's paths (6201–6401).
func (s *Server) mobileRoutes() []route {
	var out []route
	for path, infno := range nhsa.MobilePaths {
		out = append(out, route{method: "POST", path: path, access: public, maxBody: 1 << 20, h: func(c *call) error { return s.mobileCall(c, infno) }})
	}
	return out
}

func (s *Server) mobileCall(c *call, infno string) error {
	ctx := c.r.Context()
	p, err := s.authenticate(c.r, c.body)
	var resp nhsa.MobileResponse
	if err != nil {
		resp = nhsa.MobileResponse{Code: -1, Message: "认证失败 (" + string(yibao.ErrorCode(err)) + "): " + yibao.ErrorMessage(err)}
	} else {
		resp = s.nhsa.HandleMobile(yibao.WithPrincipal(ctx, p), s.pay, infno, c.body, p.Subject)
	}
	return c.json(http.StatusOK, resp)
}

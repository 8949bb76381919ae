package httpapi

import (
	"io/fs"
	"net/http"
	"time"

	"yibao"
	"yibao/ecert"
	"yibao/ecert/code"
	"yibao/web"
)

// The /app page is the official-app channel's patient page. Its API lives
// under /app/api/ and is private to the page: the platform acts as the
// channel, and a patient session cookie stands for the activated device.
const appCookie = "yb_app"

func (s *Server) appRoutes() []route {
	return []route{
		{method: "POST", path: "/app/api/activate", access: public, h: s.appActivate},
		{method: "POST", path: "/app/api/confirm", access: public, h: s.appConfirm},
		{method: "GET", path: "/app/api/summary", access: public, h: s.appSummary},
		{method: "POST", path: "/app/api/render", access: public, h: s.appRender},
		{method: "GET", path: "/app/api/settlements", access: public, h: s.appSettlements},
		{method: "GET", path: "/app/api/settlements/{setl_id}", access: public, h: s.appReceipt},
		{method: "GET", path: "/app/api/settlements/{setl_id}/receipt.json", access: public, h: s.appSettlementReceipt},
		{method: "GET", path: "/app/api/family", access: public, h: s.appFamily},
		{method: "GET", path: "/app/api/hospitals", access: public, h: s.appHospitals},
		{method: "GET", path: "/app/api/slots", access: public, h: s.appSlots},
		{method: "POST", path: "/app/api/appointments", access: public, h: s.appBook},
		{method: "GET", path: "/app/api/bills", access: public, h: s.appBills},
		{method: "GET", path: "/app/api/bills/{pay_ord_id}", access: public, h: s.appBill},
		{method: "POST", path: "/app/api/bills/{pay_ord_id}/confirm", access: public, h: s.appConfirmBill},
		{method: "GET", path: "/app/api/agreements", access: public, h: s.appAgreements},
		{method: "POST", path: "/app/api/agreements", access: public, h: s.appSignAgreement},
		{method: "DELETE", path: "/app/api/agreements/{agreement_no}", access: public, h: s.appRevokeAgreement},
	}
}

func (s *Server) mountApp(mux *http.ServeMux) {
	if s.ecert == nil {
		return
	}
	for _, rt := range append(append(s.appRoutes(), s.appCreditRoutes()...), s.appFaceRoutes()...) {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	const csp = "default-src 'self'; style-src 'self'; script-src 'self'"
	mountStatic(mux, "app", web.App, csp+"; img-src 'self' data:")
	mountStatic(mux, "cashier", web.Cashier, csp)
	mountStatic(mux, "admin", web.Admin, csp)
}

func (s *Server) asOfficialChannel(c *call) *call {
	c.r = c.r.WithContext(yibao.WithPrincipal(c.r.Context(), ecert.OfficialChannelPrincipal()))
	return c
}

func (s *Server) appActivate(c *call) error {
	var in ecert.ActivationRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	c = s.asOfficialChannel(c)
	a, err := s.ecert.StartActivation(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, a)
}

func (s *Server) appConfirm(c *call) error {
	var in struct {
		ActivationID string `json:"activation_id"`
		OTP          string `json:"otp"`
		DeviceKey    string `json:"device_public_key"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	c = s.asOfficialChannel(c)
	b, err := s.confirm(c, in.ActivationID, in.OTP, in.DeviceKey)
	if err != nil {
		return err
	}
	http.SetCookie(c.w, &http.Cookie{Name: appCookie, Value: s.ecert.IssueAppSession(b.BindingID), Path: "/app/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.r.TLS != nil, Expires: time.Now().Add(30 * 24 * time.Hour)})
	return c.json(http.StatusCreated, b)
}

func (s *Server) appBinding(c *call) (string, error) {
	ck, err := c.r.Cookie(appCookie)
	if err != nil {
		return "", yibao.Errorf(yibao.CodeUnauthenticated, "activate the e-certificate on this device first")
	}
	return s.ecert.AppSession(ck.Value)
}

func (s *Server) appSummary(c *call) error {
	id, err := s.appBinding(c)
	if err != nil {
		return err
	}
	c = s.asOfficialChannel(c)
	c.r.SetPathValue("binding_id", id)
	return s.ecertSummary(c)
}

func (s *Server) appRender(c *call) error {
	if _, err := s.appBinding(c); err != nil {
		return err
	}
	var in struct {
		Code   string `json:"code"`
		Format string `json:"format"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if _, err := code.Parse(in.Code); err != nil {
		return err
	}
	svg, err := code.SVG(in.Code)
	if err != nil {
		return err
	}
	return c.raw(http.StatusOK, "image/svg+xml", []byte(svg))
}

// mountStatic serves an embedded page at /<name>/ with a strict
// Content-Security-Policy (same-origin scripts and styles only).
func mountStatic(mux *http.ServeMux, name string, files fs.FS, csp string) {
	sub, _ := fs.Sub(files, name)
	h := http.StripPrefix("/"+name+"/", http.FileServerFS(sub))
	mux.Handle("GET /"+name+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	}))
	mux.Handle("GET /"+name, http.RedirectHandler("/"+name+"/", http.StatusMovedPermanently))
}

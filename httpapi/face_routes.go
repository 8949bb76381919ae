package httpapi

import (
	"encoding/base64"
	"net/http"

	"yibao"
	"yibao/faceid"
)

// faceRoutes are face payment's routes: the terminals and what they send
// (institutions), counter enrolment, and the patient's consent and
// enrolment in /app.
func (s *Server) faceRoutes() []route {
	return s.needFace([]route{
		{method: "GET", path: "/api/v1/face/status", access: anyone, h: s.faceStatus},
		{method: "POST", path: "/api/v1/face/terminals", access: anyone, idempotent: true, h: s.faceRegisterTerminal},
		{method: "POST", path: "/api/v1/face/challenges", access: anyone, h: s.faceChallenge},
		{method: "POST", path: "/api/v1/face/verify", access: anyone, maxBody: 48 << 20, h: s.faceVerify},
		{method: "POST", path: "/api/v1/face/enrolments", access: anyone, maxBody: 12 << 20, h: s.faceEnrolAtCounter},
	})
}

func (s *Server) appFaceRoutes() []route {
	return s.needFace([]route{
		{method: "GET", path: "/app/api/face", access: public, h: s.appFace},
		{method: "POST", path: "/app/api/face/consent", access: public, h: s.appFaceConsent},
		{method: "POST", path: "/app/api/face/enrol", access: public, maxBody: 12 << 20, h: s.appFaceEnrol},
		{method: "DELETE", path: "/app/api/face", access: public, h: s.appFaceWithdraw},
	})
}

func (s *Server) needFace(rs []route) []route {
	for i := range rs {
		h := rs[i].h
		rs[i].h = func(c *call) error {
			if s.face == nil {
				return yibao.Errorf(yibao.CodeUnavailable, "face payment is not available on this server")
			}
			return h(c)
		}
	}
	return rs
}

func (s *Server) faceStatus(c *call) error {
	on, msg := s.face.Status()
	cfg := s.face.Config()
	return c.json(http.StatusOK, map[string]any{"on": on, "message": msg, "match_1to1": cfg.Match1to1, "match_1ton": cfg.Match1toN, "margin": cfg.Margin,
		"cap_pharmacy": cfg.CapPharmacy, "cap_hospital": cfg.CapHospital, "consent_version": faceid.ConsentVersion, "consent_text": faceid.ConsentText})
}

func (s *Server) faceRegisterTerminal(c *call) error {
	var in faceid.Terminal
	if err := c.decode(&in); err != nil {
		return err
	}
	t, err := s.face.RegisterTerminal(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, t)
}

func (s *Server) faceChallenge(c *call) error {
	var in struct {
		TerminalID string `json:"terminal_id"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	ch, err := s.face.NewChallenge(c.r.Context(), in.TerminalID)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, ch)
}

func (s *Server) faceVerify(c *call) error {
	var in faceid.VerifyRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.face.Verify(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func decodeImage(b64 string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) == 0 {
		return nil, yibao.FieldError("image", "a base64 JPEG or PNG")
	}
	return b, nil
}

func (s *Server) faceEnrolAtCounter(c *call) error {
	var in struct {
		IDNumber string `json:"id_number"`
		Name     string `json:"name"`
		Accept   bool   `json:"accept"`
		Image    string `json:"image"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	img, err := decodeImage(in.Image)
	if err != nil {
		return err
	}
	out, err := s.face.EnrolAtCounter(c.r.Context(), in.IDNumber, in.Name, in.Accept, img)
	if err != nil {
		return err
	}
	out.PsnNo = ""
	return c.json(http.StatusCreated, out)
}

func (s *Server) appFace(c *call) error {
	psn, _, err := s.appPerson(c, "face")
	if err != nil {
		return err
	}
	con, err := s.face.ConsentOf(c.r.Context(), psn)
	if err != nil {
		return err
	}
	con.PsnNo = ""
	on, msg := s.face.Status()
	return c.json(http.StatusOK, map[string]any{"consent": con, "consent_text": faceid.ConsentText, "on": on, "message": msg})
}

func (s *Server) appFaceConsent(c *call) error {
	var in struct {
		ConsentVersion string `json:"consent_version"`
		Accept         bool   `json:"accept"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if !in.Accept {
		return yibao.FieldError("accept", "read the consent text and accept it")
	}
	psn, _, err := s.appPerson(c, "face")
	if err != nil {
		return err
	}
	out, err := s.face.GiveConsent(c.r.Context(), psn, in.ConsentVersion, "app")
	if err != nil {
		return err
	}
	out.PsnNo = ""
	return c.json(http.StatusOK, out)
}

func (s *Server) appFaceEnrol(c *call) error {
	var in struct {
		Image string `json:"image"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	img, err := decodeImage(in.Image)
	if err != nil {
		return err
	}
	psn, _, err := s.appPerson(c, "face")
	if err != nil {
		return err
	}
	out, err := s.face.Enrol(c.r.Context(), psn, img)
	if err != nil {
		return err
	}
	out.PsnNo = ""
	return c.json(http.StatusCreated, out)
}

func (s *Server) appFaceWithdraw(c *call) error {
	psn, _, err := s.appPerson(c, "face")
	if err != nil {
		return err
	}
	out, err := s.face.Withdraw(c.r.Context(), psn)
	if err != nil {
		return err
	}
	out.PsnNo = ""
	return c.json(http.StatusOK, out)
}

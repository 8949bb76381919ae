package nhsa

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"time"

	"yibao"
	"yibao/ecert"
	"yibao/gmcrypto"
	"yibao/money"
	"yibao/registry"
	"yibao/settlement"
	"yibao/sqlstore"
)

// Service answers infno messages.
type Service struct {
	db     *sqlstore.DB
	reg    *registry.Service
	settle *settlement.Service
	ecert  *ecert.Service
	now    func() time.Time
	log    *slog.Logger

	// RefundedFor tells how much of a settlement's out-of-pocket leg its
	// payment order already refunded (pay.Service.RefundedFor), so that a
	// 2208 reversal does not return it again. Nil: nothing refunded.
	RefundedFor func(ctx context.Context, setlID string) (money.Fen, error)
}

// New builds the service.
func New(db *sqlstore.DB, reg *registry.Service, settle *settlement.Service, ec *ecert.Service, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, reg: reg, settle: settle, ecert: ec, now: time.Now, log: log}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// handler answers one transaction: its output (nil for none) and, when it
// creates something a 2601 reversal may undo, that thing's id.
type handler func(s *Service, ctx context.Context, r *Request) (out any, ref string, err error)

var handlers = map[string]handler{}

func register(infno string, h handler) { handlers[infno] = h }

// Supported lists the transactions this platform answers.
func Supported() []string {
	out := make([]string, 0, len(handlers))
	for k := range handlers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Handle answers one message. It never returns an error: every refusal
// is infcode -1 with err_msg, and nothing is written for it. pathInfno is
// the infno appended to the URL, if any.
func (s *Service) Handle(ctx context.Context, body []byte, pathInfno string) *Response {
	recv := s.now()
	resp := &Response{Infcode: 0, RefmsgTime: millis(recv)}
	finish := func(out any, err error) *Response {
		resp.RespondTime = millis(s.now())
		if err != nil {
			resp.Infcode, resp.Output = -1, nil
			var f *fail
			if errors.As(err, &f) {
				resp.ErrMsg = f.msg
			} else if ye := (*yibao.Error)(nil); errors.As(err, &ye) {
				resp.ErrMsg = "[" + string(ye.Code) + "] " + ye.Message
				if ye.Field != "" && !strings.Contains(ye.Message, ye.Field) {
					resp.ErrMsg += " (" + ye.Field + ")"
				}
				for i, is := range ye.Issues {
					if i == 5 {
						resp.ErrMsg += fmt.Sprintf("; … %d more", len(ye.Issues)-5)
						break
					}
					resp.ErrMsg += "; " + is.Field + ": " + is.Message
				}
			} else {
				s.log.ErrorContext(ctx, "nhsa message failed", "err", err)
				resp.ErrMsg = "平台内部错误 (internal error); the message changed nothing, retry it"
			}
			return resp
		}
		resp.ErrMsg = "成功"
		resp.Output = out
		return resp
	}
	r, err := parseEnvelope(body)
	if err != nil {
		resp.InfRefmsgid = refID("000000", recv)
		return finish(nil, err)
	}
	resp.InfRefmsgid = refID(r.MdtrtareaAdmvs, recv)
	if err := r.validate(pathInfno, recv); err != nil {
		return finish(nil, err)
	}
	p := yibao.PrincipalFrom(ctx)
	if p == nil || p.Institution == "" {
		return finish(nil, failf("调用方未认证为定点医药机构 (sign the request with the institution's key)"))
	}
	if p.Institution != r.FixmedinsCode {
		return finish(nil, failf("fixmedins_code %s 与调用方机构 %s 不一致: an institution acts only for itself", r.FixmedinsCode, p.Institution))
	}
	h := handlers[r.Infno]
	if h == nil {
		return finish(nil, failf("不支持的交易编号 infno %s (supported: %s)", r.Infno, strings.Join(Supported(), " ")))
	}
	// msgid idempotency: claim the id, run, store the answer. A repeat
	// with the same content gets the stored answer; other content is refused.
	// Once claimed, the message runs and its answer (or the release of the
	// claim) is written even if the HIS hangs up meanwhile: otherwise a
	// message cut short after its commit leaves the msgid claimed with no
	// answer, and every resend is told "being processed" for ever.
	ctx = context.WithoutCancel(ctx)
	hash := gmcrypto.SM3(append([]byte(r.Infno+"\n"), r.Input...))
	hashHex := hex.EncodeToString(hash[:])
	if old, ok, err := s.replay(ctx, r, hashHex); err != nil || ok {
		if err != nil {
			return finish(nil, err)
		}
		return old
	}
	out, ref, err := h(s, ctx, r)
	if err != nil {
		s.db.Exec(ctx, `DELETE FROM nhsa_messages WHERE msgid = ? AND response = ''`, r.Msgid)
		return finish(nil, err)
	}
	resp = finish(out, nil)
	if _, ok := out.(*File); ok {
		// A download changes nothing: nothing to remember.
		s.db.Exec(ctx, `DELETE FROM nhsa_messages WHERE msgid = ?`, r.Msgid)
		return resp
	}
	js, _ := json.Marshal(resp)
	if _, err := s.db.Exec(ctx, `UPDATE nhsa_messages SET response = ?, ref_id = ? WHERE msgid = ?`, string(js), ref, r.Msgid); err != nil {
		s.log.ErrorContext(ctx, "nhsa: storing the answer", "msgid", r.Msgid, "err", err)
	}
	return resp
}

// replay returns the stored answer of a repeated msgid, or claims the id.
func (s *Service) replay(ctx context.Context, r *Request, hash string) (*Response, bool, error) {
	_, err := s.db.Exec(ctx, `INSERT INTO nhsa_messages (msgid, fixmedins_code, infno, request_hash, response, created_at) VALUES (?, ?, ?, ?, '', ?)`,
		r.Msgid, r.FixmedinsCode, r.Infno, hash, s.now().UnixMicro())
	if err == nil {
		return nil, false, nil
	}
	if !sqlstore.IsUniqueViolation(err) {
		return nil, false, err
	}
	var inst, h, stored string
	if err := s.db.QueryRow(ctx, `SELECT fixmedins_code, request_hash, response FROM nhsa_messages WHERE msgid = ?`, r.Msgid).Scan(&inst, &h, &stored); err != nil {
		return nil, false, err
	}
	switch {
	case inst != r.FixmedinsCode || h != hash:
		return nil, false, failf("msgid %s 已被另一笔报文使用 (a msgid names one message; send a new one)", r.Msgid)
	case stored == "":
		return nil, false, failf("msgid %s 正在处理中 (the same message is being processed; retry shortly)", r.Msgid)
	}
	var old Response
	dec := json.NewDecoder(strings.NewReader(stored))
	dec.UseNumber() // amounts replay as first written ("900.00"), not re-spelt as 900
	if err := dec.Decode(&old); err != nil {
		return nil, false, err
	}
	return &old, true, nil
}

// millis is the envelope's yyyyMMddHHmmssSSS.
func millis(t time.Time) string {
	t = t.In(cst)
	return t.Format("20060102150405") + fmt.Sprintf("%03d", t.Nanosecond()/1e6)
}

func refID(admvs string, t time.Time) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1e10))
	if len(admvs) != 6 {
		admvs = "000000"
	}
	return fmt.Sprintf("%s%s%010d", admvs, t.In(cst).Format("20060102150405"), n)
}

// decodeInput decodes the transaction's input object strictly enough to
// name a mistyped field, but tolerates the extra fields HIS vendors send.
func decodeInput(r *Request, v any) error {
	dec := json.NewDecoder(bytes.NewReader(r.Input))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return failf("input 字段 %s 类型错误 (%s expected)", te.Field, te.Type)
		}
		return failf("input 解析失败: %v", err)
	}
	return nil
}

func need(node, field, v string) error {
	if strings.TrimSpace(v) == "" {
		return failf("%s.%s 不能为空 (required)", node, field)
	}
	return nil
}

// dateOf takes the date of a "yyyy-MM-dd HH:mm:ss" (or a bare date).
func dateOf(node, field, v string) (string, error) {
	if len(v) >= 10 {
		if _, err := time.Parse(time.DateOnly, v[:10]); err == nil {
			return v[:10], nil
		}
	}
	return "", failf("%s.%s %q 须为 yyyy-MM-dd HH:mm:ss", node, field, v)
}

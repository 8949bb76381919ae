package wechatsim

import (
	"fmt"
	"net/http"
	"time"
)

// Contract states (contract_state).
const (
	ctSigned     = "SIGNED"
	ctTerminated = "TERMINATED"
)

type contract struct {
	ContractID      string
	OutContractCode string
	AppID           string
	OpenID          string
	State           string
	Limit           int64 // fen per charge
	NotifyURL       string
	SignedAt        time.Time
	TerminatedAt    time.Time
}

// contractJSON is a contract as POST /v3/papay/contracts answers it and
// PAPAY.* callbacks carry it.
type contractJSON struct {
	MchID             string `json:"mchid"`
	AppID             string `json:"appid"`
	ContractID        string `json:"contract_id"`
	OutContractCode   string `json:"out_contract_code"`
	OpenID            string `json:"openid"`
	ContractState     string `json:"contract_state"`
	Limit             int64  `json:"limit"`
	SignedTime        string `json:"contract_signed_time"`
	TerminatedTime    string `json:"contract_terminated_time,omitempty"`
	TerminationRemark string `json:"contract_termination_remark,omitempty"`
}

func (s *Sim) contractOf(k *contract) contractJSON {
	j := contractJSON{
		MchID: s.cfg.MchID, AppID: k.AppID, ContractID: k.ContractID, OutContractCode: k.OutContractCode,
		OpenID: k.OpenID, ContractState: k.State, Limit: k.Limit, SignedTime: wxTime(k.SignedAt),
	}
	if !k.TerminatedAt.IsZero() {
		j.TerminatedTime = wxTime(k.TerminatedAt)
	}
	return j
}

// signContract: POST /v3/papay/contracts
//
//	{appid, mchid, out_contract_code, openid, limit, notify_url?}
//	→ 200 {mchid, appid, contract_id, out_contract_code, openid,
//	       contract_state: "SIGNED", limit, contract_signed_time}
//
// This path is the simulator's stand-in for WeChat's page-based signing
// (pre-entrust-sign, then the payer confirms in the WeChat app): the
// payer has consented in the merchant's app and the simulator plays the
// wallet app. A PAPAY.CONTRACT.SIGNED callback goes to notify_url. The
// same out_contract_code for the same payer and limit answers the same
// contract.
func (s *Sim) signContract(_ *http.Request, body []byte) reply {
	var in struct {
		AppID           string `json:"appid"`
		MchID           string `json:"mchid"`
		OutContractCode string `json:"out_contract_code"`
		OpenID          string `json:"openid"`
		Limit           int64  `json:"limit"`
		NotifyURL       string `json:"notify_url"`
	}
	if err := decode(body, &in); err != nil {
		return paramError(err.Error())
	}
	if rep, good := s.checkMerchant(in.AppID, in.MchID); !good {
		return rep
	}
	switch {
	case !validNo(in.OutContractCode, 32):
		return paramError("out_contract_code must be 1-32 letters, digits or _-|*@")
	case in.OpenID == "":
		return paramError("openid is required")
	case in.Limit <= 0:
		return paramError("limit must be > 0 fen")
	}
	s.mu.Lock()
	if k := s.byCode[in.OutContractCode]; k != nil {
		defer s.mu.Unlock()
		if k.OpenID != in.OpenID || k.Limit != in.Limit || k.State != ctSigned {
			return fail(http.StatusBadRequest, "INVALID_REQUEST", "out_contract_code already used")
		}
		return ok(s.contractOf(k))
	}
	if _, known := s.balanceOf(in.OpenID); !known {
		s.mu.Unlock()
		return paramError("openid is not a user of this appid")
	}
	now := s.now()
	k := &contract{
		ContractID:      fmt.Sprintf("Wx%s%012d", now.In(chinaTime).Format("20060102150405"), s.nextSeq()),
		OutContractCode: in.OutContractCode, AppID: in.AppID, OpenID: in.OpenID, State: ctSigned,
		Limit: in.Limit, NotifyURL: in.NotifyURL, SignedAt: now,
	}
	s.contracts[k.ContractID] = k
	s.byCode[k.OutContractCode] = k
	out := s.contractOf(k)
	ev := s.newEvent(k.NotifyURL, "PAPAY.CONTRACT.SIGNED", "签约成功", "contract", out)
	s.mu.Unlock()
	s.notify(ev, false)
	return ok(out)
}

// terminateContract: POST /v3/papay/contracts/{contract_id}/terminate
// {appid, mchid, contract_termination_remark?} → 204, then a
// PAPAY.CONTRACT.TERMINATED callback. Terminating twice is fine; an
// unknown contract is 404 RESOURCE_NOT_EXISTS. (A simulator stand-in,
// like signContract.)
func (s *Sim) terminateContract(r *http.Request, body []byte) reply {
	var in struct {
		AppID  string `json:"appid"`
		MchID  string `json:"mchid"`
		Remark string `json:"contract_termination_remark"`
	}
	if err := decode(body, &in); err != nil {
		return paramError(err.Error())
	}
	if rep, good := s.checkMerchant(in.AppID, in.MchID); !good {
		return rep
	}
	s.mu.Lock()
	k := s.contracts[r.PathValue("id")]
	if k == nil {
		s.mu.Unlock()
		return fail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "委托代扣协议不存在")
	}
	var ev *event
	if k.State != ctTerminated {
		k.State, k.TerminatedAt = ctTerminated, s.now()
		out := s.contractOf(k)
		out.TerminationRemark = in.Remark
		ev = s.newEvent(k.NotifyURL, "PAPAY.CONTRACT.TERMINATED", "解约成功", "contract", out)
	}
	s.mu.Unlock()
	s.notify(ev, false)
	return noContent()
}

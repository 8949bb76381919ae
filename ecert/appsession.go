package ecert

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"yibao"
	"yibao/gmcrypto"
)

// The built-in official-app channel (/app) is served by the platform
// itself. Its patient sessions are stateless: the binding id and an
// expiry, MACed with a key derived from the master key. Every use still
// checks that the binding is active, so revoking the device ends the
// session.

// OfficialChannel is the id of the built-in channel.
const OfficialChannel = "ch_official"

const appSessionTTL = 30 * 24 * time.Hour

func (s *Service) appKey() []byte { return gmcrypto.DeriveKey(s.master, "yibao/ecert/app-session", 32) }

// IssueAppSession returns a session token for a binding of the official channel.
func (s *Service) IssueAppSession(bindingID string) string {
	body := bindingID + "." + strconv.FormatInt(s.now().Add(appSessionTTL).Unix(), 10)
	mac := gmcrypto.HMACSM3(s.appKey(), []byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(mac)
}

// AppSession checks a session token and returns its binding id.
func (s *Service) AppSession(token string) (string, error) {
	bad := yibao.Errorf(yibao.CodeUnauthenticated, "activate the e-certificate on this device first")
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return "", bad
	}
	body, sig := token[:i], token[i+1:]
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !gmcrypto.HMACEqual(mac, gmcrypto.HMACSM3(s.appKey(), []byte(body))) {
		return "", bad
	}
	j := strings.LastIndexByte(body, '.')
	exp, err := strconv.ParseInt(body[j+1:], 10, 64)
	if j < 0 || err != nil || s.now().Unix() > exp {
		return "", bad
	}
	return body[:j], nil
}

// OfficialChannelPrincipal is the principal the platform uses when it
// acts as its own official-app channel.
func OfficialChannelPrincipal() *yibao.Principal {
	return &yibao.Principal{Kind: yibao.PrincipalChannel, Subject: OfficialChannel, Role: yibao.RoleChannel, DisplayName: "国家医保服务平台"}
}

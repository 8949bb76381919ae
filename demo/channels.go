package demo

import "yibao/gmcrypto"

// Channel is a demo e-certificate channel. Its SM2 key is derived from a
// public seed so that the demo's channel simulators (yibao ecert …) can
// sign as it: demo data only.
type Channel struct {
	ID, Name string
}

// Channels are the demo's e-certificate channel simulators (WeChat and
// Alipay mini-programs); the built-in official app (/app) is registered by
// the platform itself.
func Channels() []Channel {
	return []Channel{
		{ID: "ch_wechat", Name: "微信（模拟器）"},
		{ID: "ch_alipay", Name: "支付宝（模拟器）"},
	}
}

// ChannelKey is a demo channel's SM2 key.
func ChannelKey(id string) *gmcrypto.PrivateKey {
	return gmcrypto.DeterministicKey([]byte("yibao demo channel/" + id))
}

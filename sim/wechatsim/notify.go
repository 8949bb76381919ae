package wechatsim

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// event is one callback, ready to send: the same id and body go out on
// every attempt and every duplicate, as WeChat retries them.
type event struct {
	id   string
	url  string
	body []byte
}

// notification is the callback body.
type notification struct {
	ID           string   `json:"id"`
	CreateTime   string   `json:"create_time"`
	EventType    string   `json:"event_type"`
	ResourceType string   `json:"resource_type"`
	Summary      string   `json:"summary"`
	Resource     resource `json:"resource"`
}

type resource struct {
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	OriginalType   string `json:"original_type"`
	Nonce          string `json:"nonce"`
}

// newEvent builds a callback whose resource (payload as JSON) is
// encrypted with AEAD_AES_256_GCM under the API v3 key: a 12-character
// nonce, associated_data = the original type, the ciphertext with its
// 16-byte tag appended, base64. Returns nil when there is nowhere to send
// it. Callers hold s.mu (for the sequence).
func (s *Sim) newEvent(url, eventType, summary, originalType string, payload any) *event {
	if url == "" {
		return nil
	}
	plain, err := json.Marshal(payload)
	if err != nil {
		return nil
	}
	block, err := aes.NewCipher([]byte(s.cfg.APIv3Key))
	if err != nil {
		return nil // a bad key: nothing could be sent anyway
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil
	}
	nonce := randString(12)
	now := s.now()
	n := notification{
		ID:           fmt.Sprintf("EV-%s%06d", now.In(chinaTime).Format("20060102150405"), s.nextSeq()),
		CreateTime:   wxTime(now),
		EventType:    eventType,
		ResourceType: "encrypt-resource",
		Summary:      summary,
		Resource: resource{
			Algorithm:      "AEAD_AES_256_GCM",
			Ciphertext:     base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plain, []byte(originalType))),
			AssociatedData: originalType,
			OriginalType:   originalType,
			Nonce:          nonce,
		},
	}
	body, err := json.Marshal(n)
	if err != nil {
		return nil
	}
	return &event{id: n.ID, url: url, body: body}
}

// notify sends a callback in the background, on the retry schedule,
// 1+NotifyDuplicates times (unless NotifyDrop). early: the first attempt
// is made now, before the caller answers its own request (NotifyEarly).
func (s *Sim) notify(ev *event, early bool) {
	if ev == nil {
		return
	}
	f := s.faults.Get()
	if f.NotifyDrop {
		return
	}
	copies := 1 + max(0, f.NotifyDuplicates)
	firstAttempt := 0
	if early {
		if s.post(s.ctx, ev) {
			copies--
		} else {
			firstAttempt = 1 // the first copy goes on with its retries
		}
	}
	if copies == 0 {
		return
	}
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := range copies {
			start := 0
			if i == 0 {
				start = firstAttempt
			}
			s.deliver(ev, start)
		}
	}()
}

// deliver sends one copy of a callback until it is answered with 2xx,
// waiting the schedule's delays between attempts; it gives up after the
// last one. start: attempts already made.
func (s *Sim) deliver(ev *event, start int) {
	for attempt := start; ; attempt++ {
		if attempt > 0 {
			if attempt > len(s.cfg.NotifySchedule) {
				return
			}
			t := time.NewTimer(s.cfg.NotifySchedule[attempt-1])
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
		}
		if s.post(s.ctx, ev) {
			return
		}
	}
}

// post makes one attempt, signed with the platform key like an answer.
func (s *Sim) post(ctx context.Context, ev *event) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ev.url, bytes.NewReader(ev.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", contentJSON)
	req.Header.Set("User-Agent", "Mozilla/4.0 (wechatsim)")
	s.signHeaders(req.Header, ev.body)
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

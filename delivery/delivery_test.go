package delivery_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/delivery"
	"yibao/gmcrypto"
	"yibao/registry"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

type receiver struct {
	mu       sync.Mutex
	fail     int // answer 500 this many times first
	seen     []string
	bad      int
	secret   []byte
	received map[string]int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get(delivery.HeaderEventID)
	if delivery.Sign(r.secret, req.Header.Get(delivery.HeaderTimestamp), id, body) != req.Header.Get(delivery.HeaderSignature) {
		r.bad++
		w.WriteHeader(401)
		return
	}
	r.seen = append(r.seen, id)
	if r.fail > 0 {
		r.fail--
		w.WriteHeader(500)
		return
	}
	r.received[id]++ // a receiver deduplicates by event id
	w.WriteHeader(204)
}

func setup(t *testing.T) (*delivery.Service, *sqlstore.DB, *time.Time, context.Context, context.Context) {
	db := sqltest.Open(t)
	keys, _ := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": []byte("0123456789abcdef")})
	reg := registry.New(db, keys, []byte("blind-index-key-for-tests-only!!"))
	adm := yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "admin", Role: yibao.RoleAdmin})
	reg.CreateRegion(adm, yibao.Region{Admdvs: "370100", Name: "济南市"})
	for _, c := range []string{"H37010000001", "H37010000002"} {
		if _, err := reg.CreateInstitution(adm, yibao.Institution{Code: c, Name: c, Kind: yibao.KindHospital, Level: 3, Admdvs: "370100"}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)
	s := delivery.New(db, keys, nil)
	s.SetClock(func() time.Time { return now })
	s.MaxAttempts = 4
	h1 := yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c1", Role: yibao.RoleCashier, Institution: "H37010000001"})
	return s, db, &now, adm, h1
}

func event(t *testing.T, db *sqlstore.DB, id, code string, at time.Time) {
	if _, err := db.Exec(context.Background(), `INSERT INTO outbox (id, topic, subject, payload, created_at, fixmedins_code, next_attempt_at) VALUES (?, 'settlement.completed', 'ST1', '{"setl_id":"ST1"}', ?, ?, ?)`,
		id, at.UnixMicro(), code, at.UnixMicro()); err != nil {
		t.Fatal(err)
	}
}

func TestAtLeastOnceWithBackoff(t *testing.T) {
	s, db, now, adm, h1 := setup(t)
	rcv := &receiver{fail: 2, received: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	wh, err := s.SetWebhook(h1, "H37010000001", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rcv.secret, _ = hex.DecodeString(wh.Secret)
	event(t, db, "EV1", "H37010000001", *now)
	ctx := context.Background()
	for i := range 3 {
		n, err := s.DeliverDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if (i < 2 && n != 0) || (i == 2 && n != 1) {
			t.Fatalf("round %d delivered %d", i, n)
		}
		// Not due again until the backoff has passed.
		if n, _ := s.DeliverDue(ctx); n != 0 || len(rcv.seen) != i+1 {
			t.Fatalf("round %d: redelivered before the backoff (%d posts)", i, len(rcv.seen))
		}
		*now = now.Add(time.Minute)
	}
	if rcv.bad != 0 || len(rcv.seen) != 3 || rcv.received["EV1"] != 1 {
		t.Fatalf("seen %v, bad signatures %d, received %v", rcv.seen, rcv.bad, rcv.received)
	}
	list, _ := s.Events(adm, "delivered", 10)
	if len(list) != 1 || list[0].Attempts != 3 {
		t.Fatalf("delivered %+v", list)
	}
}

func TestDeadLetterAndRetry(t *testing.T) {
	s, db, now, adm, h1 := setup(t)
	rcv := &receiver{fail: 100, received: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	wh, _ := s.SetWebhook(adm, "H37010000001", srv.URL)
	rcv.secret, _ = hex.DecodeString(wh.Secret)
	event(t, db, "EV2", "H37010000001", *now)
	event(t, db, "EV3", "H37010000002", *now) // no webhook: skipped
	for range 10 {
		s.DeliverDue(context.Background())
		*now = now.Add(time.Hour)
	}
	dead, _ := s.Events(adm, "dead", 10)
	if len(dead) != 1 || dead[0].ID != "EV2" || dead[0].Attempts != 4 || dead[0].LastError != "HTTP 500" {
		t.Fatalf("dead %+v", dead)
	}
	skipped, _ := s.Events(adm, "skipped", 10)
	if len(skipped) != 1 || skipped[0].ID != "EV3" {
		t.Fatalf("skipped %+v", skipped)
	}
	// The hospital sees only its own; it cannot retry another's.
	mine, _ := s.Events(h1, "skipped", 10)
	if len(mine) != 0 {
		t.Fatalf("H1 sees %+v", mine)
	}
	if err := s.Retry(h1, "EV3"); !yibao.IsCode(err, yibao.CodeNotFound) {
		t.Fatalf("retry another's event: %v", err)
	}
	if _, err := s.SetWebhook(h1, "H37010000002", srv.URL); !yibao.IsCode(err, yibao.CodeForbidden) {
		t.Fatalf("set another's webhook: %v", err)
	}
	if _, err := s.SetWebhook(h1, "H37010000001", "ftp://x"); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("bad URL: %v", err)
	}
	// Fix the receiver and retry from the dead-letter view.
	rcv.mu.Lock()
	rcv.fail = 0
	rcv.mu.Unlock()
	if err := s.Retry(h1, "EV2"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.DeliverDue(context.Background()); n != 1 || rcv.received["EV2"] != 1 {
		t.Fatalf("after retry: %d %v", n, rcv.received)
	}
}

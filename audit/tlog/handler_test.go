package tlog_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"

	"yibao/audit/tlog"
)

// TestHandlerServesTesseraClient follows the log over HTTP with tessera's
// own client and fsck, as a witness or monitor would.
func TestHandlerServesTesseraClient(t *testing.T) {
	f := getFixture(t)
	ctx := t.Context()
	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", tlog.NewHandler(f.dir)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	u, _ := url.Parse(srv.URL + "/log/")
	fetcher, err := client.NewHTTPFetcher(u, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	// A standard client knows only the Ed25519 key.
	cp, raw, _, err := client.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, f.keys.edV, origin)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 2000 || string(raw) != f.cp2000 {
		t.Fatalf("checkpoint over HTTP: size %d\n%s", cp.Size, raw)
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, fetcher.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.receipts {
		p, err := pb.InclusionProof(ctx, r.Index)
		if err != nil {
			t.Fatalf("inclusion proof %d: %v", r.Index, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(f.data[r.Index]), p, cp.Hash); err != nil {
			t.Errorf("inclusion proof %d from the client: %v", r.Index, err)
		}
		if fmt.Sprint(p) != fmt.Sprint(r.Proof) {
			t.Errorf("inclusion proof %d differs from the receipt's", r.Index)
		}
	}
	cons, err := pb.ConsistencyProof(ctx, 100, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyCheckpointConsistency(f.cp100, string(raw), cons, f.keys.verifiers()); err != nil {
		t.Errorf("client's consistency proof: %v", err)
	}
	for _, i := range []uint64{0, 3, 7} {
		b, err := client.GetEntryBundle(ctx, fetcher.ReadEntryBundle, i, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range b.Entries {
			if !bytes.Equal(e, f.data[i*256+uint64(j)]) {
				t.Fatalf("bundle %d entry %d differs", i, j)
			}
		}
	}
	// tessera's fsck, over HTTP.
	leaves := func(b []byte) ([][]byte, error) {
		var eb api.EntryBundle
		if err := eb.UnmarshalText(b); err != nil {
			return nil, err
		}
		var hs [][]byte
		for _, e := range eb.Entries {
			hs = append(hs, rfc6962.DefaultHasher.HashLeaf(e))
		}
		return hs, nil
	}
	if err := fsck.New(origin, f.keys.edV, fetcher, leaves, fsck.Opts{N: 4}).Check(ctx); err != nil {
		t.Errorf("fsck over HTTP: %v", err)
	}

	// Only the log's public files are served.
	for path, want := range map[string]int{
		"/log/checkpoint":             200,
		"/log/tile/entries/000":       200,
		"/log/tile/entries/007.p/208": 200,
		"/log/tile/0/000":             200,
		"/log/tile/1/000.p/7":         200,
		"/log/tile/0/008":             404,
		"/log/tile/0/0000":            404,
		"/log/tile/00/000":            404,
		"/log/tile/0/x000/000":        404,
		"/log/.state/treeState":       404,
		"/log/.writer.lock":           404,
		"/log/tile/":                  404,
		"/log/tile/0/":                404,
		"/log/tile/entries":           404,
		"/log/":                       404,
		"/log/../go.mod":              404,
		"/log/%2e%2e/checkpoint":      404,
	} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := srv.Client().Post(srv.URL+"/log/checkpoint", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	resp, err = srv.Client().Get(srv.URL + "/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "text/plain; charset=utf-8" || cc != "no-cache" {
		t.Errorf("checkpoint headers: %q %q", ct, cc)
	}
}

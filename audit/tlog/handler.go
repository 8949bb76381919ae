package tlog

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
)

// Handler serves the log read-only over HTTP in the tlog-tiles layout:
// GET checkpoint, tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>] relative
// to where it is mounted, e.g.
//
//	mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
//
// so that tessera's client, fsck and witnesses can follow the log. It keeps
// working after Close.
func (l *Log) Handler() http.Handler { return NewHandler(l.dir) }

// NewHandler serves the log in dir read-only (see Log.Handler), e.g. from a
// replica of the directory or a process that does not write the log.
// Nothing but the checkpoint and well-formed tile paths is served: not
// tessera's private .state, the writer lock, temporary files or listings.
func NewHandler(dir string) http.Handler {
	return &handler{dir: dir}
}

type handler struct {
	dir string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	var contentType, cache string
	switch {
	case p == layout.CheckpointPath:
		contentType, cache = "text/plain; charset=utf-8", "no-cache"
	case validTilePath(p):
		// Full and partial tiles alike never change once written.
		contentType, cache = "application/octet-stream", "public, max-age=31536000, immutable"
	default:
		http.NotFound(w, r)
		return
	}
	root, err := os.OpenRoot(h.dir)
	if err != nil {
		http.Error(w, "log unavailable", http.StatusServiceUnavailable)
		return
	}
	defer root.Close()
	f, err := root.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "read error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// validTilePath accepts exactly the canonical tlog-tiles paths
// tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>] (N as x001/234).
func validTilePath(p string) bool {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return false
	}
	level, index, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	i, w, err := layout.ParseTileIndexPartial(index)
	if err != nil {
		return false
	}
	if level == "entries" {
		return layout.EntriesPath(i, w) == p
	}
	l, err := layout.ParseTileLevel(level)
	return err == nil && layout.TilePath(l, i, w) == p
}

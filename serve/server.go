package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/model"
	"github.com/covseg/covseg/volume"
)

// Defaults of Config.
const (
	DefaultModelName      = "covseg"
	DefaultQueueSize      = 8
	DefaultMaxUpload      = 2 << 30
	DefaultInferTimeout   = 10 * time.Minute
	DefaultRequestTimeout = 15 * time.Minute
	// DefaultUploadSlots bounds the uploads decoded at once: each holds a
	// CT in memory.
	DefaultUploadSlots = 4
	// retryAfter is what a 503 tells clients to wait, in seconds.
	retryAfter = 2
)

// Segmenter segments a CT; *infer.Segmenter is one. Its Segment calls are
// serialised: the model is loaded once and runs one volume at a time, while
// other workers read, write and analyse.
type Segmenter interface {
	Segment(v *volume.Volume) (*infer.Result, error)
	Config() model.Config
}

// Config sets up a Server.
type Config struct {
	// Dir is the datastore folder (created if needed).
	Dir string
	// Segmenter runs the model; nil serves the viewer and saved labels only,
	// and /infer answers 503.
	Segmenter Segmenter
	// ModelName is the model's name in /info/ and /infer/NAME.
	ModelName string
	// DataDir, when set, is a folder of CTs (NIfTI files, DICOM folders)
	// that clients may name by their base name instead of uploading them.
	DataDir string
	// Workers is the number of jobs processed at once (default 1).
	Workers int
	// QueueSize is how many jobs may wait; more answer 503 (default 8).
	QueueSize int
	// MaxUpload caps a request body in bytes (default 2 GiB).
	MaxUpload int64
	// UploadSlots bounds the uploads decoded at once (default 4); more
	// answer 503.
	UploadSlots int
	// InferTimeout is how long /infer waits for its job before answering
	// 504; the job goes on and its result stays in the datastore.
	InferTimeout time.Duration
	// Token, when set, is the bearer token every request needs.
	Token string
	// Version is covseg's version, for /info/ and the reports.
	Version string
	// Log receives a line per job; nil discards.
	Log io.Writer
}

// Server is covseg's HTTP server.
type Server struct {
	cfg     Config
	st      *store
	q       queue
	model   sync.Mutex
	uploads chan struct{}
	log     *log.Logger
	closed  sync.Once
	// stopping makes the workers leave queued jobs for the next start.
	stopping atomic.Bool
}

// New opens the datastore, starts the workers and queues again the cases
// an earlier run left unfinished.
func New(cfg Config) (*Server, error) {
	if cfg.ModelName == "" {
		cfg.ModelName = DefaultModelName
	}
	if _, err := SafeID(cfg.ModelName); err != nil || strings.ContainsAny(cfg.ModelName, "/\\") {
		return nil, fmt.Errorf("serve: model name %q: use letters, digits, '.', '_', '-'", cfg.ModelName)
	}
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.UploadSlots <= 0 {
		cfg.UploadSlots = DefaultUploadSlots
	}
	if cfg.InferTimeout <= 0 {
		cfg.InferTimeout = DefaultInferTimeout
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	st, err := openStore(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, uploads: make(chan struct{}, cfg.UploadSlots), log: log.New(cfg.Log, "serve: ", log.LstdFlags)}
	s.q.ch = make(chan *job, cfg.QueueSize)
	s.q.inflight = map[string]*job{}
	for range cfg.Workers {
		s.q.wg.Add(1)
		go s.work()
	}
	if err := s.resume(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops taking jobs and waits for the running ones to end; jobs still
// waiting stay queued in their records, and the next New runs them.
func (s *Server) Close() {
	s.closed.Do(func() {
		s.stopping.Store(true)
		s.q.mu.Lock()
		close(s.q.ch)
		s.q.inflight = map[string]*job{}
		s.q.mu.Unlock()
		s.q.wg.Wait()
	})
}

func (s *Server) logf(format string, args ...any) { s.log.Printf(format, args...) }

// Handler returns the server's routes, behind the token check when a token
// is set.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	exact := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern+"{$}", h)
		mux.HandleFunc(strings.TrimSuffix(pattern, "/"), h)
	}
	exact("GET /info/", s.handleInfo)
	exact("GET /auth/", s.handleAuth)
	mux.HandleFunc("POST /auth/token", s.handleToken)
	mux.HandleFunc("GET /auth/token/valid", s.handleTokenValid)
	exact("GET /train/", s.handleTrain)
	exact("GET /datastore/", s.handleDatastore)
	exact("PUT /datastore/", s.handleUpload)
	mux.HandleFunc("PUT /datastore/label", s.handleSaveLabel)
	mux.HandleFunc("GET /datastore/image", s.handleDownload(FileImage, "image"))
	mux.HandleFunc("GET /datastore/label", s.handleDownload(FileMask, "label"))
	mux.HandleFunc("POST /infer/{model}", s.handleInfer)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	s.viewerRoutes(mux)
	return noBodyClose(s.auth(mux))
}

// noBodyClose answers a GET, HEAD or DELETE that declares a body with
// "Connection: close". Slicer's MONAILabelClient reuses its header dict, so
// after an upload its GETs carry the upload's Content-Length but no body; Go's
// server would wait for that body before answering, and the client would
// hang. With the connection closing, the answer goes out first.
func noBodyClose(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodDelete:
			if r.ContentLength > 0 {
				w.Header().Set("Connection", "close")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// tokenCookie carries the token for browsers, which cannot add a header to
// the requests of a page.
const tokenCookie = "covseg_token"

// auth lets a request through when no token is set, when it carries the
// token (Authorization: Bearer, or the cookie), or when it asks whether auth
// is on. GET /?token=T sets the cookie and redirects to the case list.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte(s.cfg.Token)
	ok := func(got string) bool { return got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if r.Method == http.MethodGet && (p == "/auth/" || p == "/auth" || p == "/healthz") ||
			r.Method == http.MethodPost && p == "/auth/token" {
			next.ServeHTTP(w, r)
			return
		}
		if t := r.URL.Query().Get("token"); p == "/" && ok(t) {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		got := bearer(r.Header.Get("Authorization"))
		if c, err := r.Cookie(tokenCookie); got == "" && err == nil {
			got = c.Value
		}
		if !ok(got) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="covseg"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN (browsers: open /?token=TOKEN once)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header; the
// scheme is case-insensitive (RFC 9110), and Slicer's client sends the
// token_type it was given, "bearer".
func bearer(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// writeError answers an error as MONAI Label (FastAPI) does: {"detail": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeJSON(w, status, map[string]string{"detail": msg})
}

// fail answers err with its status: an httpError's own, 503 for a full
// queue, 404 for a missing case, 409 for a busy one, 500 otherwise.
func (s *Server) fail(w http.ResponseWriter, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.msg)
	case errors.Is(err, ErrBusy):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, fs.ErrNotExist):
		writeError(w, http.StatusNotFound, "no such case")
	case errors.Is(err, errStopping):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, errConflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.logf("error: %v", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// caseID reads and sanitises a case ID from the query. Unlike an uploaded
// file's name, which may be a client-side path and keeps its base name, an
// ID with a path separator is refused.
func caseID(r *http.Request, key string) (string, error) {
	raw := r.URL.Query().Get(key)
	if raw == "" {
		return "", badRequest("query parameter %q (the image ID) is missing", key)
	}
	if strings.ContainsAny(raw, `/\`) {
		return "", badRequest("%s %q: an image ID is a name, not a path", key, clip(raw))
	}
	id, err := SafeID(raw)
	if err != nil {
		return "", badRequest("%s: %v", key, err)
	}
	return id, nil
}

// IsLoopback reports whether addr (host:port) listens on loopback only.
// An empty host (all interfaces) is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckAddr refuses to listen on a non-loopback address without a token.
func CheckAddr(addr, token string) error {
	if !IsLoopback(addr) && token == "" {
		return fmt.Errorf("serve: refusing to listen on %s without a token: give --token-file or COVSEG_SERVE_TOKEN, or listen on 127.0.0.1", addr)
	}
	return nil
}

// ListenAndServe serves h on addr until ctx ends, with timeouts on reading
// headers and bodies and on writing answers, then shuts down gracefully.
// ready, when not nil, receives the address listened on.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, requestTimeout time.Duration, ready func(net.Addr)) error {
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       requestTimeout,
		WriteTimeout:      requestTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 16,
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// ReadToken reads a token file: its first line, trimmed.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("serve: token: %w", err)
	}
	t, _, _ := strings.Cut(string(b), "\n")
	t = strings.TrimSpace(t)
	if len(t) < 16 {
		return "", fmt.Errorf("serve: token in %s is shorter than 16 characters", path)
	}
	return t, nil
}

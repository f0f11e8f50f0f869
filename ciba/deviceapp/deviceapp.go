package deviceapp

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// Prefix is the path the app is served under.
const Prefix = "/app/"

// CSP is the Content-Security-Policy of every answer: nothing inline,
// nothing from another origin.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// versionMarker in sw.js is replaced by the digest of every file, so a
// changed file changes the service worker and with it the cache.
const versionMarker = "__COUNTERSIGN_APP_VERSION__"

//go:embed static
var static embed.FS

// asset is one file ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// app is the loaded set of files.
type app struct {
	files   map[string]asset // by path below Prefix, "" is the shell
	version string
}

// Handler serves the app under /app/ (mount it on "/app/*"): the shell at
// /app/ and /app/enroll, the service worker, the manifest, icons, CSS and
// JavaScript modules. Other paths under /app/ are 404.
func Handler() http.Handler {
	a, err := loaded()
	if err != nil {
		panic("deviceapp: embedded files: " + err.Error()) // the files are compiled in
	}
	return a
}

// Version is the digest that names the service worker's cache.
func Version() string {
	a, err := loaded()
	if err != nil {
		return ""
	}
	return a.version
}

// loaded reads the embedded files once.
var loaded = sync.OnceValues(func() (*app, error) { return load(static) })

func load(fsys embed.FS) (*app, error) {
	root, err := fs.Sub(fsys, "static")
	if err != nil {
		return nil, err
	}
	a := &app{files: map[string]asset{}}
	var names []string
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	all := sha256.New()
	raw := map[string][]byte{}
	for _, n := range names {
		b, err := fs.ReadFile(root, n)
		if err != nil {
			return nil, err
		}
		raw[n] = b
		all.Write([]byte(n))
		all.Write(b)
	}
	a.version = hex.EncodeToString(all.Sum(nil))[:16]
	for n, b := range raw {
		if n == "sw.js" {
			b = bytes.ReplaceAll(b, []byte(versionMarker), []byte(a.version))
		}
		sum := sha256.Sum256(b)
		a.files[n] = asset{body: b, contentType: contentType(n), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	a.files[""] = a.files["index.html"]
	a.files["enroll"] = a.files["index.html"]
	delete(a.files, "index.html")
	return a, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".webmanifest":
		return "application/manifest+json"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY") // frame-ancestors 'none' for browsers without CSP 2
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/app" {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	f, found := a.files[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	// Revalidate every time: the service worker's cache is what makes the
	// app work offline, and a changed file must reach it.
	h.Set("Cache-Control", "no-cache")
	if name == "sw.js" {
		// W3C Service Workers §4.2 (Service-Worker-Allowed): the scope is /app/.
		h.Set("Service-Worker-Allowed", Prefix)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

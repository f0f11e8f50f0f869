package deviceapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func get(t *testing.T, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w
}

func TestShellHeadersAndNoInlineCode(t *testing.T) {
	for _, path := range []string{"/app/", "/app/enroll?code=ABCDEF"} {
		w := get(t, "GET", path, nil)
		if w.Code != 200 {
			t.Fatalf("%s: %d", path, w.Code)
		}
		h := w.Header()
		if h.Get("Content-Security-Policy") != CSP || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" {
			t.Fatalf("%s headers: %v", path, h)
		}
		body := w.Body.String()
		if !strings.Contains(body, `<script type="module" src="js/app.js"></script>`) {
			t.Fatalf("%s: no app module", path)
		}
		// CSP forbids inline code: every script has a src, no style
		// elements or attributes, no inline event handlers.
		for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`), regexp.MustCompile(`<script(?:(?:\s[^>]*)?)>`),
			regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`)} {
			for _, m := range bad.FindAllString(body, -1) {
				if !strings.Contains(m, "src=") {
					t.Fatalf("%s: inline code %q", path, m)
				}
			}
		}
	}
	if h := get(t, "GET", "/app/", nil).Header(); !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self';") {
		t.Fatalf("CSP: %q", h.Get("Content-Security-Policy"))
	}
}

func TestServiceWorkerScopeVersionAndAssetList(t *testing.T) {
	w := get(t, "GET", "/app/sw.js", nil)
	if w.Code != 200 || w.Header().Get("Service-Worker-Allowed") != "/app/" ||
		w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("sw.js: %d %v", w.Code, w.Header())
	}
	body := w.Body.String()
	if strings.Contains(body, versionMarker) || !strings.Contains(body, `const VERSION = "`+Version()+`"`) || len(Version()) != 16 {
		t.Fatalf("version not stamped (%q)", Version())
	}
	// The service worker precaches every embedded file but itself, so the
	// app works offline once loaded.
	list := regexp.MustCompile(`(?s)const ASSETS = \[(.*?)\];`).FindStringSubmatch(body)
	if list == nil {
		t.Fatal("no ASSETS list")
	}
	var cached []string
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(list[1], -1) {
		cached = append(cached, m[1])
	}
	var want []string
	_ = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != "static/sw.js" {
			name := strings.TrimPrefix(p, "static/")
			if name == "index.html" {
				name = ""
			}
			want = append(want, name)
		}
		return nil
	})
	sort.Strings(cached)
	sort.Strings(want)
	if strings.Join(cached, ",") != strings.Join(want, ",") {
		t.Fatalf("sw.js ASSETS\n got  %v\n want %v", cached, want)
	}
	for _, a := range cached {
		if r := get(t, "GET", "/app/"+a, nil); r.Code != 200 {
			t.Fatalf("precached %q: %d", a, r.Code)
		}
	}
}

func TestModulesImportOnlyEmbeddedFiles(t *testing.T) {
	imp := regexp.MustCompile(`(?m)^import .* from "\./([a-z]+\.js)";$`)
	entries, _ := fs.ReadDir(static, "static/js")
	if len(entries) < 9 {
		t.Fatalf("js files: %d", len(entries))
	}
	for _, e := range entries {
		b, _ := fs.ReadFile(static, "static/js/"+e.Name())
		for _, m := range imp.FindAllSubmatch(b, -1) {
			if _, err := fs.Stat(static, "static/js/"+string(m[1])); err != nil {
				t.Fatalf("%s imports missing %s", e.Name(), m[1])
			}
		}
		// No eval-like code and no HTML sinks: text only goes in as text.
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Fatalf("%s uses %s", e.Name(), bad)
			}
		}
	}
}

func TestManifestAndIcons(t *testing.T) {
	w := get(t, "GET", "/app/manifest.webmanifest", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/manifest+json" {
		t.Fatalf("manifest: %d %v", w.Code, w.Header())
	}
	var m struct {
		Name, StartURL, Scope, Display string
		Icons                          []struct{ Src, Sizes, Type, Purpose string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "Countersign" || m.Display != "standalone" || len(m.Icons) != 4 {
		t.Fatalf("manifest: %+v", m)
	}
	var sizes []string
	for _, ic := range m.Icons {
		r := get(t, "GET", "/app/"+ic.Src, nil)
		if r.Code != 200 || r.Header().Get("Content-Type") != ic.Type {
			t.Fatalf("icon %s: %d %s", ic.Src, r.Code, r.Header().Get("Content-Type"))
		}
		if ic.Type == "image/png" {
			cfg, err := png.DecodeConfig(r.Body)
			if err != nil {
				t.Fatalf("icon %s: %v", ic.Src, err)
			}
			got := fmt.Sprintf("%dx%d", cfg.Width, cfg.Height)
			if got != ic.Sizes {
				t.Fatalf("icon %s is %s, manifest says %s", ic.Src, got, ic.Sizes)
			}
			sizes = append(sizes, got+"/"+ic.Purpose)
		}
	}
	if strings.Join(sizes, " ") != "192x192/any 512x512/any 512x512/maskable" {
		t.Fatalf("png icons: %v", sizes)
	}
}

func TestRoutingMethodsAndRevalidation(t *testing.T) {
	if w := get(t, "GET", "/app/nope.js", nil); w.Code != 404 || w.Header().Get("Content-Security-Policy") != CSP {
		t.Fatalf("unknown file: %d", w.Code)
	}
	if w := get(t, "GET", "/app/index.html", nil); w.Code != 404 {
		t.Fatalf("index.html is reached at /app/ only: %d", w.Code)
	}
	if w := get(t, "GET", "/app", nil); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/app/" {
		t.Fatalf("/app: %d %v", w.Code, w.Header())
	}
	if w := get(t, "POST", "/app/", nil); w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", w.Code, w.Header())
	}
	w := get(t, "GET", "/app/js/app.js", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("app.js: %d %v", w.Code, w.Header())
	}
	if r := get(t, "GET", "/app/js/app.js", map[string]string{"If-None-Match": w.Header().Get("ETag")}); r.Code != 304 {
		t.Fatalf("revalidation: %d", r.Code)
	}
	if r := get(t, "HEAD", "/app/app.css", nil); r.Code != 200 || r.Body.Len() != 0 || r.Header().Get("Content-Type") != "text/css; charset=utf-8" {
		t.Fatalf("HEAD css: %d %v", r.Code, r.Header())
	}
}

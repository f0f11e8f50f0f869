package phone

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed web/page.html web/app.css
var webFiles embed.FS

var page = template.Must(template.ParseFS(webFiles, "web/page.html"))

// contentSecurityPolicy allows the page nothing but its own stylesheet and
// forms posting back to the stub: no script at all.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// pageData is what the page template shows.
type pageData struct {
	Enrolled         bool
	Name             string
	DeviceID, UserID string
	Requests         []pageRequest
	Mandates         []pageMandate
	Flash, Error     string
	CSRF             string
	Zone             string // the time zone every time on the page is in
}

// pageRequest is one pending request, ready to show.
type pageRequest struct {
	ID, Agent, ClientID, Owner string
	BindingMessage, Summary    string
	Actions                    []string // one line per authorization_details entry
	Details                    string   // the authorization_details, indented
	Level                      string
	Score                      int
	RequiredBy                 []string // rules that required the phone; shown instead of the score
	Reasons                    []Reason
	Expires                    string
	Expired                    bool
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY") // frame-ancestors 'none' for browsers without CSP 2
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	h.Set("Cache-Control", "no-store")
}

func handleCSS(w http.ResponseWriter, _ *http.Request) {
	css, _ := webFiles.ReadFile("web/app.css")
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	_, _ = w.Write(css)
}

// handlePage lists the pending requests.
func (p *Phone) handlePage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	p.mu.Lock()
	data := pageData{
		Enrolled: p.st.DeviceID != "",
		Name:     p.st.Name,
		DeviceID: p.st.DeviceID,
		UserID:   p.st.UserID,
		Flash:    p.flash,
		CSRF:     p.csrf,
		Zone:     p.loc.String(),
	}
	p.flash = ""
	summaries := make(map[string]string, len(p.summaries))
	for k, v := range p.summaries {
		summaries[k] = v
	}
	p.mu.Unlock()
	if data.Enrolled {
		reqs, err := p.Pending(ctx)
		if err != nil {
			data.Error = err.Error()
		}
		now := p.now()
		for _, req := range reqs {
			data.Requests = append(data.Requests, showRequest(req, summaries[req.ID], now.In(p.loc)))
		}
		ms, err := p.Mandates(ctx)
		if err != nil && data.Error == "" {
			data.Error = err.Error()
		}
		for _, m := range ms {
			data.Mandates = append(data.Mandates, showMandate(m, p.loc))
		}
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, data); err != nil {
		http.Error(w, "rendering page", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// handleDecide signs and sends the decision chosen on the page, then sends
// the browser back to the list (303, so a reload does not post again).
func (p *Phone) handleDecide(w http.ResponseWriter, r *http.Request) {
	id, ok := p.pageForm(w, r)
	if !ok {
		return
	}
	decision := r.PostForm.Get("decision")
	if decision != Approve && decision != Deny {
		http.Error(w, "id and decision (approve|deny) required", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	msg := "Approved."
	if decision == Deny {
		msg = "Denied."
	}
	if err := p.Decide(ctx, id, decision); err != nil {
		msg = "Could not send your decision: " + err.Error()
		var se *ServerError
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			msg = "This request was already decided or has expired."
		}
	}
	p.mu.Lock()
	p.flash = msg
	p.mu.Unlock()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// pageForm reads a form posted by the page and returns its id; false
// after answering a bad or forged form.
func (p *Phone) pageForm(w http.ResponseWriter, r *http.Request) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return "", false
	}
	// The token proves the form came from this page, not another site.
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(p.csrf)) != 1 {
		http.Error(w, "stale or forged form: reload the page", http.StatusForbidden)
		return "", false
	}
	id := r.PostForm.Get("id")
	if id == "" {
		http.Error(w, "id required", http.StatusBadRequest)
		return "", false
	}
	return id, true
}

// showRequest turns a request view into what the page shows; times are
// shown in now's location, the phone's time zone.
func showRequest(r Request, summary string, now time.Time) pageRequest {
	pr := pageRequest{
		ID:             r.ID,
		Agent:          r.Agent.ClientName,
		ClientID:       r.Agent.ClientID,
		Owner:          r.Agent.Owner,
		BindingMessage: r.BindingMessage,
		Summary:        summary,
		Level:          r.Risk.Level,
		Score:          r.Risk.Score,
		RequiredBy:     r.Risk.RequiredBy,
		Reasons:        r.Risk.Reasons,
	}
	if pr.Agent == "" {
		pr.Agent = r.Agent.ClientID
	}
	var details []map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.AuthorizationDetails))
	dec.UseNumber() // amounts as sent: 25000.00 stays exact
	if len(r.AuthorizationDetails) > 0 && dec.Decode(&details) == nil && len(details) > 0 {
		for _, d := range details {
			if d["type"] == "intent_mandate" {
				pr.Actions = append(pr.Actions, describeMandate(d, now.Location())...)
				continue
			}
			pr.Actions = append(pr.Actions, describeDetail(d))
		}
		var indented bytes.Buffer
		if json.Indent(&indented, r.AuthorizationDetails, "", "  ") == nil {
			pr.Details = indented.String()
		}
	}
	if !r.ExpiresAt.IsZero() {
		left := r.ExpiresAt.Sub(now).Round(time.Second)
		pr.Expired = left <= 0
		pr.Expires = r.ExpiresAt.In(now.Location()).Format("15:04:05 MST")
		if pr.Expired {
			pr.Expires += " (expired)"
		} else {
			pr.Expires += " (in " + left.String() + ")"
		}
	}
	return pr
}

// describeDetail is a one-line summary of an authorization_details entry
// (RFC 9396 §2: type, actions/action, locations; amounts as payment
// initiation carries them); the exact JSON is shown beside it.
func describeDetail(d map[string]any) string {
	var parts []string
	add := func(format string, v any) {
		if s := plain(v); s != "" {
			parts = append(parts, fmt.Sprintf(format, s))
		}
	}
	add("%v", d["type"])
	add("%v", d["action"])
	if acts, ok := d["actions"].([]any); ok {
		add("%v", joinAny(acts))
	}
	if amount, ok := d["amount"]; ok {
		add("%v", money(amount, d["currency"]))
	} else if ia, ok := d["instructedAmount"].(map[string]any); ok {
		add("%v", money(ia["amount"], ia["currency"]))
	}
	if c, ok := d["creditor"].(map[string]any); ok {
		add("to %v", c["name"])
	}
	for _, key := range []string{"creditorName", "recipient", "resource"} {
		if v, ok := d[key]; ok {
			add(key+" %v", v)
		}
	}
	if locs, ok := d["locations"].([]any); ok {
		add("at %v", joinAny(locs))
	}
	if len(parts) == 0 {
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "details: " + strings.Join(keys, ", ")
	}
	return strings.Join(parts, " · ")
}

func joinAny(xs []any) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = plain(x)
	}
	return strings.Join(s, ", ")
}

// money is "25,000.00 EUR": the amount exactly as sent, its integer part
// grouped by thousands, at least the currency's minor digits (ISO 4217:
// two, none for the few zero-decimal currencies), then the code.
func money(amount, currency any) string {
	a, cur := plain(amount), plain(currency)
	if !decimalAmount.MatchString(a) {
		return strings.TrimSpace(a + " " + cur)
	}
	whole, frac, _ := strings.Cut(a, ".")
	minor := 2
	if cur == "" || zeroDecimal[cur] {
		minor = 0
	}
	for len(frac) < minor {
		frac += "0"
	}
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return strings.TrimSpace(b.String() + " " + cur)
}

var decimalAmount = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// zeroDecimal are the common ISO 4217 currencies without minor units.
var zeroDecimal = map[string]bool{"JPY": true, "KRW": true, "CLP": true, "ISK": true, "VND": true, "XAF": true, "XOF": true, "UGX": true}

// plain prints a JSON value: numbers without exponents, nil as "".
func plain(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		if f, err := x.Float64(); err == nil && strings.ContainsAny(string(x), "eE") {
			return strconv.FormatFloat(f, 'f', -1, 64) // 1e3 as 1000
		}
		return string(x)
	}
	return fmt.Sprint(v)
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the server's configuration: flags with COUNTERSIGN_*
// environment twins (flags win).
type Config struct {
	DPoPNonce          bool // require DPoP server nonces (RFC 9449 §8)
	AuditRetention     time.Duration
	KeyRotation        time.Duration
	DefaultAudience    string
	AuditExportDir     string
	Issuer             string
	Listen             string
	RedisURL           string
	AdminToken         string
	RulesFile          string
	Dev                bool
	AccessTokenTTL     time.Duration
	IDTokenTTL         time.Duration
	DefaultExpiry      time.Duration
	MaxExpiry          time.Duration
	MandateMaxValidity time.Duration
	PollInterval       int
	MaxPendingPerUser  int
	MaxPendingPerAgent int
	MaxPushesPerMinute int
	VAPIDSubject       string
	KeyPrefix          string
	LogLevel           string
	AdminName          string
	RequestTimeout     time.Duration
	RuleDeadline       time.Duration
	PprofListen        string // --pprof-listen (profiling.go)
	Abuse                     // request rate limits, HTTP timeouts, /metrics (abuse.go)
}

type flagDef struct {
	name, env, help string
	secret          bool // never shown as a default in --help
	str             *string
	boolean         *bool
	dur             *time.Duration
	num             *int
	def             string
}

func (c *Config) defs() []flagDef {
	return append([]flagDef{
		{name: "issuer", env: "COUNTERSIGN_ISSUER", str: &c.Issuer, help: "issuer URL: what tokens, discovery and enrollment links name (default http:// and the bound listen address)"},
		{name: "listen", env: "COUNTERSIGN_LISTEN", str: &c.Listen, def: "127.0.0.1:8080", help: "listen address"},
		{name: "redis-url", env: "COUNTERSIGN_REDIS_URL", str: &c.RedisURL, help: "redis://, rediss://, redis+sentinel://h1:p,h2:p/master, redis+cluster://h1:p,h2:p; empty: embedded in-memory store"},
		{name: "admin-token", env: "COUNTERSIGN_ADMIN_TOKEN", str: &c.AdminToken, secret: true, help: "admin bearer token (generated and printed in embedded mode when empty)"},
		{name: "admin-name", env: "COUNTERSIGN_ADMIN_NAME", str: &c.AdminName, def: "admin", help: "name recorded as the author of admin changes"},
		{name: "rules", env: "COUNTERSIGN_RULES", str: &c.RulesFile, help: "ruleset file to activate at start when none is active"},
		{name: "dev", env: "COUNTERSIGN_DEV", boolean: &c.Dev, help: "development mode: allow http:// and loopback notification endpoints and push services"},
		{name: "access-token-ttl", env: "COUNTERSIGN_ACCESS_TOKEN_TTL", dur: &c.AccessTokenTTL, def: "5m", help: "access token lifetime"},
		{name: "id-token-ttl", env: "COUNTERSIGN_ID_TOKEN_TTL", dur: &c.IDTokenTTL, def: "5m", help: "ID token lifetime"},
		{name: "default-expiry", env: "COUNTERSIGN_DEFAULT_EXPIRY", dur: &c.DefaultExpiry, def: "300s", help: "request expiry when requested_expiry is absent"},
		{name: "max-expiry", env: "COUNTERSIGN_MAX_EXPIRY", dur: &c.MaxExpiry, def: "1800s", help: "largest requested_expiry honoured (larger values are clamped)"},
		{name: "mandate-max-validity", env: "COUNTERSIGN_MANDATE_MAX_VALIDITY", dur: &c.MandateMaxValidity, def: "168h", help: "how far ahead an intent mandate's valid_until may be"},
		{name: "poll-interval", env: "COUNTERSIGN_POLL_INTERVAL", num: &c.PollInterval, def: "5", help: "poll interval in seconds for device-pending requests"},
		{name: "max-pending-per-user", env: "COUNTERSIGN_MAX_PENDING_PER_USER", num: &c.MaxPendingPerUser, def: "10", help: "device-pending requests per user (0: no cap)"},
		{name: "max-pending-per-agent-user", env: "COUNTERSIGN_MAX_PENDING_PER_AGENT_USER", num: &c.MaxPendingPerAgent, def: "3", help: "device-pending requests per agent and user (0: no cap)"},
		{name: "max-pushes-per-minute", env: "COUNTERSIGN_MAX_PUSHES_PER_MINUTE", num: &c.MaxPushesPerMinute, def: "5", help: "approval pushes per user per minute (0: no cap)"},
		{name: "vapid-subject", env: "COUNTERSIGN_VAPID_SUBJECT", str: &c.VAPIDSubject, def: "admin@countersign.invalid", help: "VAPID contact: an email address without mailto:, or an https URL"},
		{name: "key-prefix", env: "COUNTERSIGN_KEY_PREFIX", str: &c.KeyPrefix, def: "cs:", help: "prefix of every Redis key"},
		{name: "dpop-nonce", env: "COUNTERSIGN_DPOP_NONCE", boolean: &c.DPoPNonce, help: "require server-issued DPoP nonces at /token (RFC 9449 §8)"},
		{name: "default-audience", env: "COUNTERSIGN_DEFAULT_AUDIENCE", str: &c.DefaultAudience, help: "access token aud when authorization_details name no locations (default: the issuer)"},
		{name: "signing-key-rotation", env: "COUNTERSIGN_SIGNING_KEY_ROTATION", dur: &c.KeyRotation, def: "720h", help: "rotate the token signing key this often (0: never); the JWKS keeps the previous keys"},
		{name: "audit-retention", env: "COUNTERSIGN_AUDIT_RETENTION", dur: &c.AuditRetention, def: "0s", help: "keep audit events this long in Redis, then export them to --audit-export-dir and trim (0: keep all)"},
		{name: "audit-export-dir", env: "COUNTERSIGN_AUDIT_EXPORT_DIR", str: &c.AuditExportDir, help: "directory for the JSON Lines files of exported audit events"},
		{name: "rule-deadline", env: "COUNTERSIGN_RULE_DEADLINE", dur: &c.RuleDeadline, def: "50ms", help: "time limit of one evaluation of the rules; past it the request goes to the user's phone"},
		{name: "request-timeout", env: "COUNTERSIGN_REQUEST_TIMEOUT", dur: &c.RequestTimeout, def: "5s", help: "deadline of every request, Redis included; past it the answer is 503 temporarily_unavailable"},
		{name: "log-level", env: "COUNTERSIGN_LOG_LEVEL", str: &c.LogLevel, def: "info", help: "debug, info, warn or error"},
	}, append(c.abuseDefs(), c.pprofDefs()...)...)
}

var errHelp = errors.New("help shown")

// parseConfig reads defaults, then the environment, then the flags.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, d := range c.defs() {
		val := d.def
		if v := getenv(d.env); v != "" {
			val = v
		}
		help := d.help + " (" + d.env + ")"
		var err error
		switch {
		case d.str != nil && d.secret:
			// A secret from the environment is applied after parsing, so
			// that --help never prints it as a default.
			fs.StringVar(d.str, d.name, "", help)
		case d.str != nil:
			fs.StringVar(d.str, d.name, val, help)
		case d.boolean != nil:
			b := false
			if val != "" {
				b, err = strconv.ParseBool(val)
			}
			fs.BoolVar(d.boolean, d.name, b, help)
		case d.dur != nil:
			var v time.Duration
			if val != "" {
				v, err = time.ParseDuration(val)
			}
			fs.DurationVar(d.dur, d.name, v, help)
		case d.num != nil:
			var n int
			if val != "" {
				n, err = strconv.Atoi(val)
			}
			fs.IntVar(d.num, d.name, n, help)
		}
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %v", d.env, val, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, d := range c.defs() {
		if d.secret && *d.str == "" {
			*d.str = getenv(d.env)
		}
	}
	return c, c.Validate()
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	for _, check := range configChecks {
		errs = append(errs, check(c)...)
	}
	return errors.Join(errs...)
}

// configChecks are Validate's rules, one named check per concern; each
// returns what it finds wrong.
var configChecks = []func(c *Config) []error{
	checkIssuer,
	checkConnection,
	checkKeysAndAudit,
	checkDurations,
	checkLimits,
	checkVAPIDSubject,
	checkLogLevel,
	func(c *Config) []error { return c.Abuse.validate(c.RequestTimeout) },
	func(c *Config) []error { return validatePprof(c.PprofListen) },
}

func checkIssuer(c *Config) []error {
	issuer := c.Issuer
	if issuer == "" {
		// Derived from the bound address at start; checked here as it
		// will be, so a bad one fails before anything listens.
		issuer = defaultIssuer(c.Listen)
	}
	u, err := url.Parse(issuer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return []error{errors.New("issuer must be an absolute http(s) URL")}
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(issuer, "/"):
		return []error{errors.New("issuer must have no query, fragment or trailing slash (RFC 8414 §2)")}
	case u.Scheme == "http" && !c.Dev && !isLoopbackHost(u.Hostname()):
		return []error{fmt.Errorf("issuer %s must be https unless it is loopback or --dev is set (set --issuer to the https URL clients use)", issuer)}
	}
	return nil
}

// checkConnection checks the listen address, the Redis URL and the admin
// token that goes with an external Redis.
func checkConnection(c *Config) []error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %v", err))
	}
	if c.RedisURL != "" {
		if _, err := redisOptions(c.RedisURL); err != nil {
			errs = append(errs, fmt.Errorf("redis-url: %v", err))
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("admin-token must be at least 16 characters"))
	}
	if c.RedisURL != "" && c.AdminToken == "" {
		errs = append(errs, errors.New("admin-token is required with an external Redis (it is only generated in embedded mode)"))
	}
	return errs
}

func checkKeysAndAudit(c *Config) []error {
	var errs []error
	if c.KeyRotation != 0 && c.KeyRotation < time.Hour {
		errs = append(errs, errors.New("signing-key-rotation must be 0 or at least 1h (tokens signed by a key must expire before it leaves the JWKS)"))
	}
	if c.AuditRetention < 0 || (c.AuditRetention > 0 && c.AuditRetention < time.Hour) {
		errs = append(errs, errors.New("audit-retention must be 0 or at least 1h"))
	}
	if c.AuditRetention > 0 && c.AuditExportDir == "" {
		errs = append(errs, errors.New("audit-retention needs audit-export-dir: events are exported before they are trimmed"))
	}
	return errs
}

func checkDurations(c *Config) []error {
	var errs []error
	for name, d := range map[string]time.Duration{"access-token-ttl": c.AccessTokenTTL, "id-token-ttl": c.IDTokenTTL,
		"default-expiry": c.DefaultExpiry, "max-expiry": c.MaxExpiry} {
		if d < time.Second || d > 24*time.Hour {
			errs = append(errs, fmt.Errorf("%s must be between 1s and 24h", name))
		}
	}
	if c.MandateMaxValidity < time.Minute || c.MandateMaxValidity > 90*24*time.Hour {
		errs = append(errs, errors.New("mandate-max-validity must be between 1m and 2160h (90 days)"))
	}
	if c.DefaultExpiry > c.MaxExpiry {
		errs = append(errs, errors.New("default-expiry must not exceed max-expiry"))
	}
	if c.PollInterval < 1 || c.PollInterval > 60 {
		errs = append(errs, errors.New("poll-interval must be 1 to 60 seconds"))
	}
	if c.RuleDeadline < time.Millisecond || c.RuleDeadline > 10*time.Second {
		errs = append(errs, errors.New("rule-deadline must be between 1ms and 10s"))
	}
	if c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > 30*time.Second {
		errs = append(errs, errors.New("request-timeout must be between 100ms and 30s"))
	}
	return errs
}

func checkLimits(c *Config) []error {
	var errs []error
	for name, n := range map[string]int{"max-pending-per-user": c.MaxPendingPerUser,
		"max-pending-per-agent-user": c.MaxPendingPerAgent, "max-pushes-per-minute": c.MaxPushesPerMinute} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", name))
		}
	}
	return errs
}

func checkVAPIDSubject(c *Config) []error {
	if strings.HasPrefix(c.VAPIDSubject, "mailto:") || !strings.Contains(c.VAPIDSubject, "@") && !strings.HasPrefix(c.VAPIDSubject, "https://") {
		return []error{errors.New("vapid-subject must be an email address without mailto: (webpush-go adds it) or an https URL")}
	}
	return nil
}

func checkLogLevel(c *Config) []error {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
		return nil
	}
	return []error{errors.New("log-level must be debug, info, warn or error")}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// defaultIssuer is the issuer when none is configured: http:// and the
// listen address, so tokens and enrollment links name the port the server
// listens on. An unspecified host (0.0.0.0, ::) becomes loopback, the one
// address that surely reaches this machine; clients elsewhere need
// --issuer.
func defaultIssuer(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Package deviceapp serves the phone web app at /app/: the page a user
// opens on the phone they already carry to enroll it, see what an agent
// asks, and approve or deny with a device-signed decision (the device API
// of docs/api.md). Every string an agent chose is shown isolated (<bdi>,
// dir="auto", U+2068/U+2069 in notifications), so right-to-left text cannot
// reorder the amount or name beside it.
//
// It owns only static files, embedded with go:embed, and the headers they
// are served with:
//
//	/app/                  the app shell (index.html); /app/enroll?code=... too
//	/app/sw.js             the service worker (Service-Worker-Allowed: /app/),
//	                       its cache name carries a digest of every file
//	/app/manifest.webmanifest, /app/icons/*, /app/app.css, /app/js/*.js
//
// Every answer carries a strict Content-Security-Policy (no inline script or
// style, nothing from other origins), nosniff and frame-ancestors 'none'.
//
// Everything the app does happens in the browser: it makes a
// non-extractable P-256 key with WebCrypto, keeps it in IndexedDB, signs
// the Device JWTs and decision JWTs itself (ES256, RFC 7515 §A.3) and
// canonicalises authorization_details with its own RFC 8785 encoder
// (static/js/jcs.js). The package deliberately has no server-side state,
// templates or API handlers: the device API lives in ciba/server, and
// ciba/server mounts Handler on /app/.
package deviceapp

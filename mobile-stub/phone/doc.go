// Package phone is Countersign's simulated phone: a device that enrolls with
// the server, receives Web Push approval requests, shows them, and signs
// approve / deny decisions with its own key. The mobile-stub command wraps
// it, and the server's own tests run it in-process as the device.
//
// It imports nothing of the server: it speaks HTTP only, as a real phone
// would, so it tests the HTTP contract (docs/api.md) rather than sharing code with
// the implementation.
//
// What it owns:
//
//   - Keys and state (state.go): a P-256 device key (ES256), a P-256 ECDH
//     push key and a 16-byte auth secret, generated once and kept in a 0600
//     JSON file (or in memory), with the device_id, user_id and VAPID key
//     learnt at enrollment.
//   - Its own push service (receiver.go): POST /push/<random id> is the
//     subscription endpoint. It checks VAPID (RFC 8292) against the key the
//     server gave at enrollment, decrypts aes128gcm (RFC 8291), answers
//     201 Created (RFC 8030 §5) and delivers the payload on Pushes().
//     VerifyVAPID and DecryptPush (webpush.go) are exported so server tests
//     can use them as the receiving side of a fake push service.
//   - The device API client (client.go): discovery, enrollment, the device
//     JWT of every call, the request list and view, and decisions signed
//     over what the view showed (decision.go: bm_hash, ad_hash with RFC
//     8785 canonical JSON).
//   - A phone-sized web page (web.go): pending requests with Approve / Deny
//     forms; the stub signs server-side, so the page needs no script.
//
// What it deliberately does not do: store requests (the server is the
// truth; every decision re-reads the view), retry, or trust a push payload
// for what it signs (a push only says "look"; the view is what is signed).
package phone

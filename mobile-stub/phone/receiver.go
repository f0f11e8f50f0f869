package phone

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// maxPushBody is the largest push message accepted: RFC 8030 §7.2 has push
// services accept at least 4096 octets, and RFC 8291 §4 fits a message in
// one 4096-octet record.
const maxPushBody = 4096

// handlePush is the phone's own push service endpoint (RFC 8030 §5): it
// authenticates the application server by VAPID, decrypts the message and
// answers 201 Created.
func (p *Phone) handlePush(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	pushID, vapidKey, endpoint := p.st.PushID, p.st.VAPIDPublicKey, p.endpointLocked()
	p.mu.Unlock()
	if subtle.ConstantTimeCompare([]byte(r.PathValue("id")), []byte(pushID)) != 1 {
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	if vapidKey == "" {
		// Not enrolled: no application server is allowed yet.
		http.Error(w, "subscription not active", http.StatusForbidden)
		return
	}
	// RFC 8030 §5.2: a push without TTL is refused with 400.
	if _, ok := r.Header["Ttl"]; !ok {
		http.Error(w, "TTL header required", http.StatusBadRequest)
		return
	}
	// RFC 8291 §4: messages use the aes128gcm content coding.
	if !strings.EqualFold(r.Header.Get("Content-Encoding"), "aes128gcm") {
		http.Error(w, "Content-Encoding must be aes128gcm", http.StatusUnsupportedMediaType)
		return
	}
	k, err := VerifyVAPID(r.Header.Get("Authorization"), endpoint, p.now())
	if err != nil {
		// RFC 8292 §4.1: 401 for a missing or invalid JWT.
		w.Header().Set("WWW-Authenticate", "vapid")
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	// RFC 8292 §4.2: 403 when the key is not the one the subscription was
	// made for (the server's vapid_public_key from enrollment).
	if subtle.ConstantTimeCompare([]byte(k), []byte(strings.TrimRight(vapidKey, "="))) != 1 {
		http.Error(w, "VAPID key does not match the subscription", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPushBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			// RFC 8030 §7.2: 413 for a message over the push service's limit.
			http.Error(w, "push message too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	plain, err := DecryptPush(body, p.keys.push, p.keys.authSecret)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A real push service cannot read the payload; the stub also stands
	// for the phone, which can, and refuses a payload it cannot show so a
	// server test sees the mistake.
	var push Push
	if err := json.Unmarshal(plain, &push); err != nil || push.Type == "" {
		http.Error(w, "payload is not a push JSON object with a type", http.StatusBadRequest)
		return
	}
	push.Raw = plain
	push.TTL = r.Header.Get("TTL")
	push.Urgency = r.Header.Get("Urgency")
	push.Topic = r.Header.Get("Topic")
	push.ReceivedAt = p.now()
	p.deliver(push)
	// RFC 8030 §5: 201 Created with the push message resource in Location.
	w.Header().Set("Location", "/message/"+randomID())
	w.WriteHeader(http.StatusCreated)
}

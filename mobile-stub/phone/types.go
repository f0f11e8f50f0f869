package phone

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Agent is the agent (OAuth client) asking, as the request view shows it.
type Agent struct {
	ClientID   string `json:"client_id"`
	ClientName string `json:"client_name,omitempty"`
	Owner      string `json:"owner,omitempty"`
}

// Reason is one matched rule and why it matched.
type Reason struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// Risk is the server's risk decision as shown on the phone.
type Risk struct {
	Level   string   `json:"level"`
	Score   int      `json:"score"`
	Reasons []Reason `json:"reasons,omitempty"`
	// RequiredBy names the rules (or "acr_values") that sent the request
	// to the phone whatever the score.
	RequiredBy []string `json:"required_by,omitempty"`
}

// UnmarshalJSON accepts the risk object of the device API and, in a push payload,
// a bare level string.
func (r *Risk) UnmarshalJSON(data []byte) error {
	var level string
	if json.Unmarshal(data, &level) == nil {
		*r = Risk{Level: level}
		return nil
	}
	type plain Risk
	return json.Unmarshal(data, (*plain)(r))
}

// Request is a device request view (GET /device/requests/{id}).
// AuthorizationDetails is kept exactly as received, so the decision signs a
// hash of what was shown.
type Request struct {
	ID                   string          `json:"id"`
	Agent                Agent           `json:"agent"`
	BindingMessage       string          `json:"binding_message,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	Risk                 Risk            `json:"risk"`
	CreatedAt            time.Time       `json:"created_at"`
	ExpiresAt            time.Time       `json:"expires_at"`
	Status               string          `json:"status"`
}

// Push is one decrypted Web Push message: the JSON payload the server sends, the
// plaintext as received, and the push headers.
type Push struct {
	Type           string    `json:"type"`
	ID             string    `json:"id"`
	BindingMessage string    `json:"binding_message,omitempty"`
	Agent          Agent     `json:"agent"`
	Summary        string    `json:"summary,omitempty"`
	Risk           Risk      `json:"risk"`
	ExpiresAt      time.Time `json:"expires_at"`

	Raw        []byte    `json:"-"` // the decrypted payload
	TTL        string    `json:"-"` // RFC 8030 §5.2
	Urgency    string    `json:"-"` // RFC 8030 §5.3
	Topic      string    `json:"-"` // RFC 8030 §5.4
	ReceivedAt time.Time `json:"-"`
}

// ServerError is an error answer from the server: the HTTP status and the
// RFC 6749 §5.2 members.
type ServerError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *ServerError) Error() string {
	msg := fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Description != "" {
		msg += " (" + e.Description + ")"
	}
	return msg
}

package phone

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// state is what the phone keeps between runs, as saved in the state file.
// Keys are base64url without padding.
type state struct {
	Server         string `json:"server,omitempty"`
	Issuer         string `json:"issuer,omitempty"`
	Name           string `json:"name,omitempty"`
	DeviceKey      string `json:"device_key"`  // PKCS #8 DER of the ES256 device key
	PushKey        string `json:"push_key"`    // P-256 ECDH scalar (RFC 8291 §3.1 ua_private)
	AuthSecret     string `json:"auth_secret"` // RFC 8291 §3.2, 16 bytes
	PushID         string `json:"push_id"`     // the random last segment of the push endpoint
	Listen         string `json:"listen,omitempty"`
	PushEndpoint   string `json:"push_endpoint,omitempty"` // the endpoint the server was last given
	DeviceID       string `json:"device_id,omitempty"`
	UserID         string `json:"user_id,omitempty"`
	VAPIDPublicKey string `json:"vapid_public_key,omitempty"`
}

// keys are the decoded secrets of a state.
type keys struct {
	device     *ecdsa.PrivateKey
	push       *ecdh.PrivateKey
	authSecret []byte
}

var b64 = base64.RawURLEncoding

// newState generates fresh keys and a push id.
func newState() (state, keys, error) {
	device, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return state{}, keys{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(device)
	if err != nil {
		return state{}, keys{}, err
	}
	push, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return state{}, keys{}, err
	}
	auth := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		return state{}, keys{}, err
	}
	st := state{
		DeviceKey:  b64.EncodeToString(der),
		PushKey:    b64.EncodeToString(push.Bytes()),
		AuthSecret: b64.EncodeToString(auth),
		PushID:     randomID(),
	}
	return st, keys{device: device, push: push, authSecret: auth}, nil
}

// decodeKeys parses the secrets of a loaded state.
func (st state) decodeKeys() (keys, error) {
	der, err := b64.DecodeString(st.DeviceKey)
	if err != nil {
		return keys{}, errors.New("device_key is not base64url")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return keys{}, fmt.Errorf("device_key: %w", err)
	}
	device, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || device.Curve != elliptic.P256() {
		return keys{}, errors.New("device_key is not a P-256 ECDSA key")
	}
	raw, err := b64.DecodeString(st.PushKey)
	if err != nil {
		return keys{}, errors.New("push_key is not base64url")
	}
	push, err := ecdh.P256().NewPrivateKey(raw)
	if err != nil {
		return keys{}, fmt.Errorf("push_key: %w", err)
	}
	auth, err := b64.DecodeString(st.AuthSecret)
	if err != nil || len(auth) != 16 {
		return keys{}, errors.New("auth_secret is not 16 bytes of base64url")
	}
	if len(st.PushID) < 22 {
		return keys{}, errors.New("push_id is missing or shorter than 128 bits")
	}
	return keys{device: device, push: push, authSecret: auth}, nil
}

// loadState reads path, or generates and saves a new state when the file
// does not exist. An empty path keeps a new state in memory only.
func loadState(path string) (state, keys, error) {
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			var st state
			if err := json.Unmarshal(data, &st); err != nil {
				return state{}, keys{}, fmt.Errorf("phone: state file %s: %w", path, err)
			}
			k, err := st.decodeKeys()
			if err != nil {
				return state{}, keys{}, fmt.Errorf("phone: state file %s: %w", path, err)
			}
			return st, k, nil
		case !errors.Is(err, fs.ErrNotExist):
			return state{}, keys{}, fmt.Errorf("phone: state file: %w", err)
		}
	}
	st, k, err := newState()
	if err != nil {
		return state{}, keys{}, fmt.Errorf("phone: generating keys: %w", err)
	}
	if err := saveState(path, st); err != nil {
		return state{}, keys{}, err
	}
	return st, k, nil
}

// saveState writes st to path with mode 0600, atomically (a temporary file
// in the same directory, then a rename), so a crash never leaves half a key.
// An empty path saves nothing.
func saveState(path string, st state) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".phone-state-*") // created 0600
	if err != nil {
		return fmt.Errorf("phone: saving state: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("phone: saving state: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("phone: saving state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("phone: saving state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("phone: saving state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("phone: saving state: %w", err)
	}
	return nil
}

// randomID returns 128 random bits, base64url.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return b64.EncodeToString(b)
}

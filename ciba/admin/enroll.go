package admin

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"net/url"
	"time"
)

// EnrollmentTTL is how long an enrollment code stays valid.
const EnrollmentTTL = 15 * time.Minute

// Enrollment is a one-time code for a user's new device.
type Enrollment struct {
	Code      string `json:"code"`
	ExpiresAt string `json:"expires_at"`
	URL       string `json:"url"`
}

// CreateEnrollment creates a one-time enrollment code (stored hashed,
// single use, short lived) for a user.
func (s *Service) CreateEnrollment(ctx context.Context, user, issuer string) (*Enrollment, error) {
	if _, err := s.User(ctx, user); err != nil {
		return nil, err
	}
	b := make([]byte, 20) // 160 bits
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	code := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	exp := s.Now().Add(EnrollmentTTL).UTC()
	if err := s.DB.CreateEnrollment(ctx, user, code, exp); err != nil {
		return nil, err
	}
	return &Enrollment{Code: code, ExpiresAt: exp.Format(time.RFC3339), URL: issuer + "/app/enroll?code=" + url.QueryEscape(code)}, nil
}

package admin

import (
	"context"
	"encoding/json"
	"time"
)

// DeviceKey is an enrolled device as the admin API shows it: its public
// key, so that a decision it signed can be verified offline; never its
// push subscription.
type DeviceKey struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	PublicKey json.RawMessage `json:"public_key"`
	CreatedAt time.Time       `json:"created_at"`
}

// UserDevices lists the user's enrolled devices with their public keys:
// 404 not_found for an unknown user.
func (s *Service) UserDevices(ctx context.Context, user string) ([]DeviceKey, error) {
	if _, err := s.User(ctx, user); err != nil {
		return nil, err
	}
	devs, err := s.DB.Devices(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]DeviceKey, 0, len(devs))
	for _, d := range devs {
		out = append(out, DeviceKey{ID: d.ID, Name: d.Name, PublicKey: d.PublicKey, CreatedAt: d.CreatedAt.UTC()})
	}
	return out, nil
}

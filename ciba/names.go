package ciba

import "github.com/countersign/countersign/ciba/store"

// Device is an enrolled phone, as AuthenticateDevice returns it: the HTTP
// layer names it without reaching into the store.
type Device = store.Device

// NewID returns a random id of the store's form (22 letters and digits),
// for request ids in logs and headers.
func NewID() string { return store.NewID() }

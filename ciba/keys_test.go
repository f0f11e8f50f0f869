package ciba_test

import (
	"context"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/ciba/token"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func TestKeyRotationIsPublishedBeforeUse(t *testing.T) {
	rs := redistest.Real(t)
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	db := store.Open(rs.Client, rs.Prefix)
	db.Now = func() time.Time { return now }
	ctx := context.Background()
	a, err := ciba.LoadKeys(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ciba.LoadKeys(ctx, db) // a second node shares the set
	if err != nil || b.Get().Current.ID != a.Get().Current.ID {
		t.Fatalf("nodes disagree on the key: %v", err)
	}
	minter := &token.Minter{Issuer: "https://as.example", Keys: a.Get, AccessTTL: 3 * time.Hour, Now: func() time.Time { return now }}
	old, _, err := minter.Access(token.AccessClaims{Subject: "u", ClientID: "c", Act: &token.Act{Sub: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	first := a.Get().Current.ID
	now = now.Add(time.Hour)
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// Freshly rotated: published (in the JWKS) but not yet signing.
	ks := a.Get()
	if ks.Current.ID != first || len(ks.JWKS().Keys) != 2 {
		t.Fatalf("a new key signs before it was published: current %s, %d keys", ks.Current.ID, len(ks.JWKS().Keys))
	}
	now = now.Add(ciba.KeyPropagation)
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Get().Current.ID == first || b.Get().Current.ID != a.Get().Current.ID {
		t.Fatal("the new key does not sign after propagation, or the nodes disagree")
	}
	// Tokens of the old key still verify on the other node.
	verifier := &token.Minter{Issuer: "https://as.example", Keys: b.Get, Now: func() time.Time { return now }}
	if _, err := verifier.Verify(old); err != nil {
		t.Fatalf("old token after rotation: %v", err)
	}
	fresh, _, _ := minter.Access(token.AccessClaims{Subject: "u", ClientID: "c", Act: &token.Act{Sub: "c"}})
	if _, err := verifier.Verify(fresh); err != nil {
		t.Fatalf("new token on the other node: %v", err)
	}
}

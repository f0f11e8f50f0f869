package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/countersign/countersign/ciba/store"
)

// TestGeneratedIDsPassEveryValidator draws 100,000 ids of each generated
// kind (client, device and grant ids from NewID; auth_req_id from
// NewShardedID) through every id validator of the admin API.
func TestGeneratedIDsPassEveryValidator(t *testing.T) {
	if bits := float64(store.IDLen) * math.Log2(62); bits < 128 {
		t.Fatalf("an id carries %.1f bits, want >= 128", bits)
	}
	for i := 0; i < 100_000; i++ {
		for _, id := range []string{store.NewID(), store.NewShardedID(i % store.Shards)} {
			if !validClientID(id) || !validUserID(id) {
				t.Fatalf("generated id %q fails a validator", id)
			}
		}
	}
}

// TestCreateClientWithoutIDNeverFails registers clients without a
// client_id: with base64url ids about 3% of them started with - or _ and
// were refused by the server's own validator.
func TestCreateClientWithoutIDNeverFails(t *testing.T) {
	s := newService(t)
	for i := 0; i < 300; i++ {
		v, err := s.CreateClient(context.Background(), []byte(`{"client_name":"generated"}`))
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		if len(v.ClientID) != store.IDLen || v.ClientSecret == "" {
			t.Fatalf("create %d: client_id %q, secret set %v", i, v.ClientID, v.ClientSecret != "")
		}
	}
}

// FuzzIDGeneration feeds NewIDFrom arbitrary leading random bytes (then a
// stream derived from them) and checks the id against every validator.
func FuzzIDGeneration(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 64)) // all rejected: the draw must go on
	f.Add(bytes.Repeat([]byte{62 + 0x3e}, 40))
	f.Add([]byte("--__--__--__--__--__--__"))
	f.Fuzz(func(t *testing.T, data []byte) {
		seed := sha256.Sum256(data)
		r := io.MultiReader(bytes.NewReader(data), rand.NewChaCha8(seed))
		id, err := store.NewIDFrom(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != store.IDLen || !validClientID(id) || !validUserID(id) {
			t.Fatalf("id %q from %x fails a validator", id, data)
		}
		for _, shard := range []string{"00", "0f"} {
			if !validClientID(shard + id) {
				t.Fatalf("sharded id %q fails", shard+id)
			}
		}
	})
}

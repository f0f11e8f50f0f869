package resource_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/countersign/countersign/ciba/resource"
)

// A calendar API that accepts Countersign tokens, bearer or DPoP-bound.
func ExampleMiddleware() {
	m := &resource.Middleware{
		Issuer:    "https://countersign.example",
		Audience:  "https://calendar.example",
		PublicURL: "https://calendar.example", // what clients put in htu
	}
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.FromContext(r.Context())
		if !c.HasScope("calendar") {
			http.Error(w, "insufficient scope", http.StatusForbidden)
			return
		}
		// c.Act.Chain() names every agent in the delegation chain;
		// c.JKT is set when the caller proved possession of its key.
		fmt.Fprintf(w, "events of %s for %v\n", c.Subject, c.Act.Chain())
	})
	mux := http.NewServeMux()
	mux.Handle("GET /events", m.Handler(events))
	log.Fatal(http.ListenAndServe("127.0.0.1:9090", mux))
}

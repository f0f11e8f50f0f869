package notify_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/notify"
)

func TestEndpointPolicyCheck(t *testing.T) {
	prod := notify.EndpointPolicy{}
	dev := notify.EndpointPolicy{AllowHTTP: true, AllowPrivate: true}
	cases := []struct {
		url       string
		prod, dev bool // allowed under each policy
	}{
		{"https://push.example.com/wpush/v2/abc", true, true},
		{"https://agent.example.com/cb?x=1", true, true},
		{"https://8.8.8.8/cb", true, true},
		{"https://[2606:4700:4700::1111]/cb", true, true},
		{"https://172.32.0.1/", true, true},        // just past 172.16/12
		{"https://100.128.0.1/", true, true},       // just past 100.64/10
		{"https://[2002:808:808::1]/", true, true}, // 6to4 of 8.8.8.8
		{"http://push.example.com/", false, true},
		{"https://127.0.0.1/", false, true},
		{"https://127.8.9.10:8443/", false, true},
		{"https://[::1]/", false, true},
		{"https://10.1.2.3/", false, true},
		{"https://172.16.0.1/", false, true},
		{"https://172.31.255.255/", false, true},
		{"https://192.168.1.1/", false, true},
		{"https://169.254.169.254/latest/meta-data", false, true},
		{"https://[fe80::1]/", false, true},
		{"https://[fe80::1%25eth0]/", false, true},
		{"https://[fc00::1]/", false, true},
		{"https://[fd12:3456::1]/", false, true},
		{"https://100.64.0.1/", false, true},
		{"https://100.127.255.255/", false, true},
		{"https://[::ffff:127.0.0.1]/", false, true},
		{"https://[::ffff:10.0.0.1]/", false, true},
		{"https://[::ffff:169.254.169.254]/", false, true},
		{"https://[64:ff9b::a00:1]/", false, true}, // NAT64 of 10.0.0.1
		{"https://[2002:7f00:1::]/", false, true},  // 6to4 of 127.0.0.1
		{"https://192.0.2.1/", false, true},
		{"https://0.0.0.0/", false, false},
		{"https://0.1.2.3/", false, false},
		{"https://[::]/", false, false},
		{"https://224.0.0.1/", false, false},
		{"https://[ff02::1]/", false, false},
		{"https://255.255.255.255/", false, false},
		{"https://user:pw@push.example.com/", false, false},
		{"https://user@push.example.com/", false, false},
		{"https://push.example.com/cb#frag", false, false},
		{"https://push.example.com/cb#", false, false},
		{"ftp://push.example.com/", false, false},
		{"javascript:alert(1)", false, false},
		{"https:///nohost", false, false},
		{"/relative/cb", false, false},
		{"https://push.example.com/" + strings.Repeat("a", 2100), false, false},
		{"https://push.example.com\x00/", false, false},
		{"https://2130706433/", false, false}, // 127.0.0.1 in decimal
		{"https://127.1/", false, false},
		{"https://0x7f.1/", false, false},
		{"https://0x7f000001/", false, false},
		{"https://1.2.3.4.5/", false, false},
		{"https://push.example.com./", true, true},
		{"https://0xdeadbeef.example.com/", true, true},
	}
	for _, c := range cases {
		for _, p := range []struct {
			name   string
			policy notify.EndpointPolicy
			want   bool
		}{{"prod", prod, c.prod}, {"dev", dev, c.dev}} {
			err := p.policy.Check(c.url)
			if got := err == nil; got != p.want {
				t.Errorf("%s Check(%q) = %v, want allowed=%v", p.name, c.url, err, p.want)
			}
			if err != nil && !errors.Is(err, notify.ErrForbiddenEndpoint) {
				t.Errorf("%s Check(%q): %v does not wrap ErrForbiddenEndpoint", p.name, c.url, err)
			}
		}
	}
	// http alone, or private alone, is not enough for a loopback http URL.
	if err := (notify.EndpointPolicy{AllowHTTP: true}).Check("http://127.0.0.1:8080/cb"); err == nil {
		t.Error("AllowHTTP alone allowed a loopback address")
	}
	if err := (notify.EndpointPolicy{AllowPrivate: true}).Check("http://127.0.0.1:8080/cb"); err == nil {
		t.Error("AllowPrivate alone allowed http")
	}
}

// A host name passes registration; the address it resolves to is refused
// when the client connects, so a name rebound to an internal address after
// registration still cannot be reached.
func TestEndpointPolicyRefusesAtDialTime(t *testing.T) {
	addrs, err := net.DefaultResolver.LookupHost(context.Background(), "localhost")
	if err != nil || len(addrs) == 0 {
		t.Fatalf("this test needs localhost to resolve: %v", err)
	}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	endpoint := "http://localhost:" + u.Port() + "/cb"

	guarded := notify.EndpointPolicy{AllowHTTP: true}
	if err := guarded.Check(endpoint); err != nil {
		t.Fatalf("Check(%q) = %v: a host name is checked at dial time, not registration", endpoint, err)
	}
	cb := &notify.Callback{Client: guarded.Client(5 * time.Second)}
	r := cb.Post(context.Background(), endpoint, notificationToken, []byte(pingBody))
	if r.Outcome != notify.Failed || r.Status != 0 || !errors.Is(r.Err, notify.ErrForbiddenEndpoint) {
		t.Errorf("Post via localhost = %+v, want Failed with ErrForbiddenEndpoint", r)
	}
	if !strings.Contains(r.Err.Error(), "loopback") {
		t.Errorf("error %q does not say why", r.Err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("server got %d requests through the guard", n)
	}

	// The same request under the dev policy goes through: the refusal above
	// was the policy, not the network.
	cb.Client = notify.EndpointPolicy{AllowHTTP: true, AllowPrivate: true}.Client(5 * time.Second)
	if r := cb.Post(context.Background(), endpoint, notificationToken, []byte(pingBody)); r.Outcome != notify.Delivered {
		t.Errorf("dev Post = %+v, want Delivered", r)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server got %d requests, want 1", n)
	}
}

func TestEndpointPolicyClientRefusesHTTPWithoutDev(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	client := notify.EndpointPolicy{AllowPrivate: true}.Client(time.Second)
	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("http request went through a policy without AllowHTTP")
	}
	if !errors.Is(err, notify.ErrForbiddenEndpoint) || hits.Load() != 0 {
		t.Errorf("err %v, %d hits; want ErrForbiddenEndpoint and none", err, hits.Load())
	}
}

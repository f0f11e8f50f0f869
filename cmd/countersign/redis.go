package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisOptions parses the Redis URL forms we document:
//
//	redis://[user:pass@]host:port[/db]           one node (rediss:// for TLS)
//	redis+sentinel://[user:pass@]h1:p,h2:p/master[?db=N]
//	redis+cluster://[user:pass@]h1:p,h2:p        (rediss+cluster:// for TLS)
func redisOptions(raw string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}, nil
	case "redis+sentinel", "redis+cluster", "rediss+cluster":
		addrs := strings.Split(u.Host, ",")
		if len(addrs) == 0 || addrs[0] == "" {
			return nil, fmt.Errorf("no hosts in %s URL", u.Scheme)
		}
		o := &redis.UniversalOptions{Addrs: addrs, Username: u.User.Username()}
		o.Password, _ = u.User.Password()
		if u.Scheme == "redis+sentinel" {
			o.MasterName = strings.Trim(u.Path, "/")
			if o.MasterName == "" {
				return nil, fmt.Errorf("redis+sentinel URL needs /master-name")
			}
			if db := u.Query().Get("db"); db != "" {
				if o.DB, err = strconv.Atoi(db); err != nil {
					return nil, fmt.Errorf("db: %v", err)
				}
			}
		} else {
			o.IsClusterMode = true
		}
		return o, nil
	}
	return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// faultWindows counts every call by class from each fault's start to its
// recovery, and for the callback fault measures how long after the
// endpoints healed the last callback that had failed got through.
func faultWindows(log *callLog, faults []faultRec, rc *receiver, rep *report) {
	log.mu.Lock()
	calls := append([]loggedCall(nil), log.calls...)
	log.mu.Unlock()
	for _, f := range faults {
		fr := faultReport{faultRec: f, Seconds: f.End.Sub(f.Start).Seconds(),
			RecoverSeconds: f.Recovered.Sub(f.End).Seconds(), Calls: map[string]int{}, Failures: map[string]int{}}
		for _, c := range calls {
			if !c.At.Before(f.Start) && !c.At.After(f.Recovered) {
				fr.Calls[c.Class]++
				if c.Detail != "" {
					fr.Failures[c.What+" "+c.Detail]++
				}
			}
		}
		if strings.HasPrefix(f.Name, "callback") {
			fr.RecoverSeconds, fr.Note = callbackRecovery(rc, f)
		}
		rep.Faults = append(rep.Faults, fr)
	}
}

func callbackRecovery(rc *receiver, f faultRec) (float64, string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	worst, n := time.Duration(0), 0
	for id, failed := range rc.failed {
		if failed == 0 {
			continue
		}
		for _, d := range rc.got[id] {
			if d.At.After(f.Start) {
				n++
				worst = max(worst, d.At.Sub(f.End))
				break
			}
		}
	}
	return worst.Seconds(), fmt.Sprintf("%d requests whose callbacks had failed were delivered later; recover = last of them after the endpoints healed", n)
}

func redisInfo(addr string) map[string]string {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]string{}
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "aof_enabled", "aof_last_write_status", "aof_last_bgrewrite_status", "aof_rewrites", "aof_current_size":
			if ok {
				out[k] = v
			}
		}
	}
	if n, err := c.DBSize(ctx).Result(); err == nil {
		out["dbsize"] = fmt.Sprint(n)
	}
	return out
}

func printReport(r *report) {
	fmt.Printf("\n== result, appendfsync %s (%s, from %s)\n", r.Fsync, r.Duration, r.Start.Format(time.RFC3339))
	fmt.Printf("requests %d (orphans %d), operations checked %d, tokens seen %d, device pushes %d\n",
		r.Requests, r.Orphans, r.Operations, r.Tokens, r.DevicePushes)
	section := func(name string, m map[string]int) {
		fmt.Println(name + ":")
		for _, k := range sortedKeys(m) {
			fmt.Printf("  %-70s %d\n", k, m[k])
		}
	}
	section("flows", r.Flows)
	section("phone decisions", r.Decisions)
	section("callbacks", r.Callbacks)
	section("sabotaged callbacks", r.Sabotaged)
	section("outcomes", r.Info)
	section("BAD (must all be 0)", r.Bad)
	section("excused under everysec (a write acknowledged < 2 s before the Redis kill -9)", r.Excused)
	for _, f := range r.Faults {
		fmt.Printf("fault %-45s lasted %.1fs, recovered %.2fs after; calls %v %s\n", f.Name, f.Seconds, f.RecoverSeconds, f.Calls, f.Note)
		for _, k := range sortedKeys(f.Failures) {
			fmt.Printf("    %-60s %d\n", k, f.Failures[k])
		}
	}
	fmt.Printf("audit chain: ok=%v, %d events verified\n", r.AuditOK, r.AuditChecked)
	fmt.Printf("linearizable: %s (%.1fs); failures %v; excused under everysec %v\n", r.Linearizable, r.CheckSeconds, r.LinFailures, r.LinExcused)
	fmt.Printf("checker self-check: %s\n", r.SelfCheck)
	fmt.Printf("redis: %v\n", r.RedisAOF)
	for _, l := range r.Undelivered {
		fmt.Println("undelivered:", l)
	}
	for _, l := range r.LinDetail {
		fmt.Println(l)
	}
	for _, p := range r.Problems {
		fmt.Println("  problem:", p)
	}
}

package library

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// The timestamp accessors that take a time zone (`request.time.getHours(
// user.timezone)`, getDayOfWeek(tz), ...; docs/rules.md "The CEL environment")
// are CEL's own functions with CEL's own results. Lib only re-binds their
// implementations so that a zone name is resolved once: CEL's stock
// implementation calls time.LoadLocation, which reads the zoneinfo database
// on every call (about 9 µs, more than the whole default ruleset). No
// function name is added; the cost is CEL's (a constant).

// maxCachedZones bounds the zone cache; names beyond it are still resolved,
// only not kept, so odd user input cannot grow memory.
const maxCachedZones = 1024

var (
	zoneCache sync.Map // string -> *time.Location
	zoneCount atomic.Int64
)

// zone resolves an IANA name or a "+HH:MM" / "-HH:MM" offset exactly as CEL
// does, caching successes.
func zone(name string) (*time.Location, error) {
	if loc, ok := zoneCache.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := parseZone(name)
	if err != nil {
		return nil, err
	}
	if zoneCount.Load() < maxCachedZones {
		if _, loaded := zoneCache.LoadOrStore(name, loc); !loaded {
			zoneCount.Add(1)
		}
	}
	return loc, nil
}

func parseZone(val string) (*time.Location, error) {
	ind := strings.Index(val, ":")
	if ind == -1 {
		return time.LoadLocation(val)
	}
	hr, err := strconv.Atoi(val[:ind])
	if err != nil {
		return nil, err
	}
	mins, err := strconv.Atoi(val[ind+1:])
	if err != nil {
		return nil, err
	}
	if hr < -23 || hr > 23 {
		return nil, fmt.Errorf("timezone offset hours out of range [-23, 23]: %s", val)
	}
	if mins < 0 || mins > 59 {
		return nil, fmt.Errorf("timezone offset minutes out of range [0, 59]: %s", val)
	}
	offset := hr*60 + mins
	if val[0] == '-' {
		offset = hr*60 - mins
	}
	return time.FixedZone("", offset*60), nil
}

type zonedAccessor struct {
	function, overload string
	get                func(time.Time) int
}

var zonedAccessors = []zonedAccessor{
	{"getFullYear", overloads.TimestampToYearWithTz, func(t time.Time) int { return t.Year() }},
	{"getMonth", overloads.TimestampToMonthWithTz, func(t time.Time) int { return int(t.Month()) - 1 }},
	{"getDayOfYear", overloads.TimestampToDayOfYearWithTz, func(t time.Time) int { return t.YearDay() - 1 }},
	{"getDayOfMonth", overloads.TimestampToDayOfMonthZeroBasedWithTz, func(t time.Time) int { return t.Day() - 1 }},
	{"getDate", overloads.TimestampToDayOfMonthOneBasedWithTz, func(t time.Time) int { return t.Day() }},
	{"getDayOfWeek", overloads.TimestampToDayOfWeekWithTz, func(t time.Time) int { return int(t.Weekday()) }},
	{"getHours", overloads.TimestampToHoursWithTz, func(t time.Time) int { return t.Hour() }},
	{"getMinutes", overloads.TimestampToMinutesWithTz, func(t time.Time) int { return t.Minute() }},
	{"getSeconds", overloads.TimestampToSecondsWithTz, func(t time.Time) int { return t.Second() }},
	{"getMilliseconds", overloads.TimestampToMillisecondsWithTz, func(t time.Time) int { return t.Nanosecond() / 1e6 }},
}

func zonedAccessorDecls() []cel.EnvOption {
	opts := make([]cel.EnvOption, 0, len(zonedAccessors))
	for _, a := range zonedAccessors {
		get := a.get
		opts = append(opts, cel.Function(a.function,
			cel.MemberOverload(a.overload, []*cel.Type{cel.TimestampType, cel.StringType}, cel.IntType,
				cel.BinaryBinding(func(ts, tz ref.Val) ref.Val {
					t, ok := ts.(types.Timestamp)
					if !ok {
						return types.MaybeNoSuchOverloadErr(ts)
					}
					name, ok := tz.(types.String)
					if !ok {
						return types.MaybeNoSuchOverloadErr(tz)
					}
					loc, err := zone(string(name))
					if err != nil {
						return types.WrapErr(err)
					}
					return types.Int(get(t.In(loc)))
				}))))
	}
	return opts
}

package oauth

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// RetryAfterUnavailable is the Retry-After, in seconds, of a
// temporarily_unavailable answer.
const RetryAfterUnavailable = "5"

// Unavailable returns the 503 temporarily_unavailable error (RFC 6749
// §5.2) with Retry-After (RFC 9110 §10.2.3): the answer when the store
// could not be reached within the request's deadline. The description
// says nothing of the cause; that goes to the log.
func Unavailable() *Error {
	return New(TemporarilyUnavailable, "the service is temporarily unavailable; retry later").
		WithHeader("Retry-After", RetryAfterUnavailable)
}

// redisTransient are the Redis error replies that mean "not now" rather
// than "no": the server is loading, failing over, out of clients or
// memory, or the cluster is reconfiguring.
var redisTransient = []string{"LOADING ", "CLUSTERDOWN ", "TRYAGAIN ", "MASTERDOWN ", "READONLY ", "NOREPLICAS ",
	"BUSY ", "OOM ", "max number of clients reached"}

// clientTransient are go-redis's own failures to get a connection (pool
// timeout or exhaustion, a closing client, no reachable sentinel).
var clientTransient = []string{"redis: connection pool", "redis: client is closed", "redis: all sentinels",
	"redis: timed out trying to mark connection as unusable", "redis: cluster has no nodes"}

// IsUnavailable reports whether err means the state behind the request
// could not be read or written in time: a deadline or cancellation, a
// network failure, a closed connection, a Redis reply that says "retry",
// or the Redis client giving up on its pool. Such errors are answered
// with Unavailable, never with server_error, and never turned into a
// protocol answer: the outcome is unknown.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &ne),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	if isRedisReply(err) {
		msg := redisMessage(err)
		for _, p := range redisTransient {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	msg := err.Error()
	for _, s := range clientTransient {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// redisReply is the marker go-redis puts on error replies of the server
// (redis.Error); matching it here keeps this package free of the client.
type redisReply interface {
	error
	RedisError()
}

func isRedisReply(err error) bool {
	var r redisReply
	return errors.As(err, &r)
}

func redisMessage(err error) string {
	var r redisReply
	errors.As(err, &r)
	// KeyDB and KVRocks put "ERR " in front of the code.
	return strings.TrimPrefix(r.Error(), "ERR ")
}

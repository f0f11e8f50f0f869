package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba/admin"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

func (s *srv) audit(c echo.Context) error {
	q := store.AuditQuery{User: c.QueryParam("user"), Agent: c.QueryParam("agent"), Request: c.QueryParam("request"),
		Type: c.QueryParam("type"), Cursor: c.QueryParam("cursor"), Mandate: c.QueryParam("mandate")}
	if v := c.QueryParam("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return oauth.New(oauth.InvalidRequest, "since must be an RFC 3339 time")
		}
		q.Since = t
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return oauth.New(oauth.InvalidRequest, "limit must be 1 to 1000")
		}
		q.Limit = n
	}
	entries, next, err := s.DB.AuditEntries(c.Request().Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		return oauth.New(oauth.InvalidRequest, "cursor is not valid")
	}
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []store.Event{}
	}
	out := map[string]any{"entries": entries}
	if next != "" {
		out["next_cursor"] = next
	}
	return c.JSON(200, out)
}

func (s *srv) auditVerify(c echo.Context) error {
	rep, err := s.DB.VerifyAudit(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(200, rep)
}

func (s *srv) revokeAgent(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		UserID string `json:"user_id"`
	}
	if len(b) > 0 {
		if err := admin.DecodeStrict(b, &in); err != nil {
			return err
		}
	}
	if err := s.Service.RevokeAgent(c.Request().Context(), c.Param("client_id"), in.UserID); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"revoked": true, "client_id": c.Param("client_id"), "user_id": in.UserID})
}

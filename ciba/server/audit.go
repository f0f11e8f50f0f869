package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba/admin"
)

func (s *srv) audit(c echo.Context) error {
	page, err := s.Admin.AuditEntries(c.Request().Context(), admin.AuditFilter{User: c.QueryParam("user"),
		Agent: c.QueryParam("agent"), Request: c.QueryParam("request"), Type: c.QueryParam("type"),
		Cursor: c.QueryParam("cursor"), Since: c.QueryParam("since"), Limit: c.QueryParam("limit"),
		Mandate: c.QueryParam("mandate")})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

func (s *srv) auditVerify(c echo.Context) error {
	rep, err := s.Admin.VerifyAudit(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
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

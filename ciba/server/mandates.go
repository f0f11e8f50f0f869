package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// mandateRoutes serves intent mandates: the user's phone lists and revokes
// its user's, the admin API every user's (docs/api.md "Intent mandates").
func (s *srv) mandateRoutes(e *echo.Echo, admin *echo.Group) {
	d := e.Group("/device/mandates", s.deviceAuth)
	d.GET("", s.deviceMandates)
	d.POST("/:id/revoke", s.deviceRevokeMandate)
	admin.GET("/mandates", s.adminMandates)
	admin.GET("/mandates/:id", s.adminMandate)
	admin.GET("/mandates/:id/record", s.adminMandateRecord)
	admin.POST("/mandates/:id/revoke", s.adminRevokeMandate)
	admin.GET("/users/:id/devices", s.userDevices)
}

func (s *srv) deviceMandates(c echo.Context) error {
	list, err := s.Service.DeviceMandates(c.Request().Context(), device(c))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, map[string]any{"mandates": list})
}

func (s *srv) deviceRevokeMandate(c echo.Context) error {
	if err := s.Service.RevokeMandate(c.Request().Context(), c.Param("id"), device(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *srv) adminMandates(c echo.Context) error {
	list, err := s.Service.ListMandates(c.Request().Context(), c.QueryParam("user"), c.QueryParam("agent"))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, map[string]any{"mandates": list})
}

func (s *srv) adminMandate(c echo.Context) error {
	v, err := s.Service.Mandate(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, v)
}

// adminMandateRecord is the mandate as stored: the entry exactly as the
// device signed it and that device's public key, for offline checks.
func (s *srv) adminMandateRecord(c echo.Context) error {
	m, err := s.Service.MandateRecord(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, m.Mandate)
}

func (s *srv) adminRevokeMandate(c echo.Context) error {
	if err := s.Service.RevokeMandate(c.Request().Context(), c.Param("id"), nil); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// userDevices lists a user's enrolled devices with their public keys.
func (s *srv) userDevices(c echo.Context) error {
	devs, err := s.Admin.UserDevices(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, map[string]any{"devices": devs})
}

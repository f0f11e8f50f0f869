package server

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/admin"
	"github.com/countersign/countersign/ciba/oauth"
)

func (s *srv) deviceRoutes(e *echo.Echo) {
	e.POST("/device/enroll", s.enroll)
	d := e.Group("/device", s.deviceAuth)
	d.GET("/requests", s.deviceRequests)
	d.GET("/requests/:id", s.deviceRequest)
	d.POST("/requests/:id/decision", s.deviceDecision)
	d.PUT("/push-subscription", s.devicePushSubscription)
	d.DELETE("", s.deviceDelete)
	d.GET("/grants", s.deviceGrants)
	d.POST("/grants/:id/revoke", s.deviceRevokeGrant)
}

func (s *srv) deviceAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := ciba.WithClientIP(c.Request().Context(), c.RealIP())
		c.SetRequest(c.Request().WithContext(ctx))
		dev, err := s.Service.AuthenticateDevice(ctx, canonicalDevice(c.Request().Header.Get("Authorization")))
		if err != nil {
			return err
		}
		c.Set("device", dev)
		return next(c)
	}
}

func device(c echo.Context) *ciba.Device { return c.Get("device").(*ciba.Device) }

func (s *srv) enroll(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var in ciba.EnrollInput
	if err := admin.DecodeStrict(b, &in); err != nil {
		return err
	}
	resp, err := s.Service.Enroll(c.Request().Context(), in, s.VAPIDPublic)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusCreated, resp)
}

func (s *srv) deviceRequests(c echo.Context) error {
	list, err := s.Service.DeviceRequests(c.Request().Context(), device(c))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(200, map[string]any{"requests": list})
}

func (s *srv) deviceRequest(c echo.Context) error {
	v, err := s.Service.DeviceRequest(c.Request().Context(), device(c), c.Param("id"))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(200, v)
}

func (s *srv) deviceDecision(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		DecisionJWT string `json:"decision_jwt"`
	}
	if err := admin.DecodeStrict(b, &in); err != nil {
		return err
	}
	if in.DecisionJWT == "" {
		return oauth.New(oauth.InvalidRequest, "decision_jwt is required")
	}
	if err := s.Service.Decide(c.Request().Context(), device(c), c.Param("id"), in.DecisionJWT); err != nil {
		return err
	}
	v, err := s.Service.DeviceRequest(c.Request().Context(), device(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(200, v)
}

func (s *srv) devicePushSubscription(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	if err := s.Service.UpdatePushSubscription(c.Request().Context(), device(c), json.RawMessage(b)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *srv) deviceDelete(c echo.Context) error {
	if err := s.Service.RemoveDevice(c.Request().Context(), device(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *srv) createEnrollment(c echo.Context) error {
	resp, err := s.Admin.CreateEnrollment(c.Request().Context(), c.Param("id"), s.Service.Config().Issuer)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusCreated, resp)
}

func (s *srv) deviceGrants(c echo.Context) error {
	gs, err := s.Service.DeviceGrants(c.Request().Context(), device(c))
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(200, map[string]any{"grants": gs})
}

func (s *srv) deviceRevokeGrant(c echo.Context) error {
	if err := s.Service.RevokeDeviceGrant(c.Request().Context(), device(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

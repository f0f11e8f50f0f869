package server

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/countersign/countersign/ciba/admin"
)

// rulesRoutes registers the ruleset admin API (docs/api.md, rules) on
// the admin group: thin handlers over admin.Rules.
func (s *srv) rulesRoutes(a *echo.Group, r *admin.Rules) {
	h := rulesHandlers{r}
	a.GET("/rules", h.active)
	a.PUT("/rules", withBody(r.Activate))
	a.POST("/rules/validate", withBody(r.Validate))
	a.POST("/rules/test", withBody(r.Test))
	a.POST("/rules/simulate", withBody(r.Simulate))
	a.GET("/rules/versions", h.versions)
	a.POST("/rules/rollback", withBody(r.Rollback))
	a.GET("/rules/shadow", h.shadow)
	a.PUT("/rules/shadow", withBody(r.SetShadow))
	a.DELETE("/rules/shadow", h.clearShadow)
}

type rulesHandlers struct{ r *admin.Rules }

// withBody is the handler of a use case that reads the JSON body and
// answers 200 with its result.
func withBody[T any](f func(ctx context.Context, body []byte) (T, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := readBody(c)
		if err != nil {
			return err
		}
		v, err := f(c.Request().Context(), b)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, v)
	}
}

func (h rulesHandlers) active(c echo.Context) error {
	v, err := h.r.Active(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h rulesHandlers) versions(c echo.Context) error {
	v, err := h.r.Versions(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"versions": v})
}

func (h rulesHandlers) shadow(c echo.Context) error {
	v, err := h.r.Shadow(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (h rulesHandlers) clearShadow(c echo.Context) error {
	if err := h.r.ClearShadow(c.Request().Context()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *srv) createClient(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	v, err := s.Admin.CreateClient(c.Request().Context(), b)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusCreated, v)
}

func (s *srv) listClients(c echo.Context) error {
	v, err := s.Admin.Clients(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(200, map[string]any{"clients": v})
}

func (s *srv) getClient(c echo.Context) error {
	v, err := s.Admin.Client(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(200, v)
}

func (s *srv) patchClient(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	v, err := s.Admin.PatchClient(c.Request().Context(), c.Param("id"), b)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(200, v)
}

func (s *srv) deleteClient(c echo.Context) error {
	if err := s.Admin.DeleteClient(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *srv) createUser(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	u, err := s.Admin.CreateUser(c.Request().Context(), b)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, u)
}

func (s *srv) listUsers(c echo.Context) error {
	u, err := s.Admin.Users(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(200, map[string]any{"users": u})
}

func (s *srv) getUser(c echo.Context) error {
	u, err := s.Admin.User(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(200, u)
}

func (s *srv) patchUser(c echo.Context) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	u, err := s.Admin.PatchUser(c.Request().Context(), c.Param("id"), b)
	if err != nil {
		return err
	}
	return c.JSON(200, u)
}

func (s *srv) deleteUser(c echo.Context) error {
	if err := s.Admin.DeleteUser(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

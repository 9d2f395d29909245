package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/silohq/silo/internal/silo"
)

type projectJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Archived  bool      `json:"archived"`
	CreatedAt timestamp `json:"created_at"`
	UpdatedAt timestamp `json:"updated_at"`
}

func toProjectJSON(p *silo.Project) projectJSON {
	return projectJSON{ID: p.ID, Name: p.Name, Archived: p.Archived, CreatedAt: timestamp(p.CreatedAt), UpdatedAt: timestamp(p.UpdatedAt)}
}

func (s *Server) handleCreateProject(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.deps.Projects.CreateProject(r.Context(), req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toProjectJSON(p))
}

func (s *Server) handleListProjects(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := pageFromQuery(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var f silo.ProjectFilter
	if len(q["archived"]) > 1 {
		s.writeError(w, r, silo.Errorf(silo.EINVALID, "Give archived once."))
		return
	}
	switch a := q.Get("archived"); a {
	case "":
	case "true", "false":
		archived := a == "true"
		f.Archived = &archived
	default:
		s.writeError(w, r, silo.Errorf(silo.EINVALID, "archived must be true or false."))
		return
	}
	ps, next, err := s.deps.Projects.Projects(r.Context(), page, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]projectJSON, len(ps))
	for i, p := range ps {
		out[i] = toProjectJSON(p)
	}
	writeJSON(w, http.StatusOK, struct {
		Projects   []projectJSON `json:"projects"`
		NextCursor *string       `json:"next_cursor"`
	}{out, optional(next)})
}

func (s *Server) handleGetProject(w http.ResponseWriter, r *http.Request) {
	p, err := s.deps.Projects.Project(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toProjectJSON(p))
}

func (s *Server) handleUpdateProject(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name     *string `json:"name"`
		Archived *bool   `json:"archived"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.deps.Projects.UpdateProject(r.Context(), chi.URLParam(r, "id"), silo.ProjectUpdate{Name: req.Name, Archived: req.Archived})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toProjectJSON(p))
}

func (s *Server) handleDeleteProject(w http.ResponseWriter, r *http.Request) {
	if err := s.deps.Projects.DeleteProject(r.Context(), chi.URLParam(r, "id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

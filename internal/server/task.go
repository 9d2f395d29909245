package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/silohq/silo/internal/silo"
)

type taskJSON struct {
	ID        string     `json:"id"`
	ProjectID string     `json:"project_id"`
	Title     string     `json:"title"`
	Done      bool       `json:"done"`
	DueAt     *timestamp `json:"due_at"`
	CreatedAt timestamp  `json:"created_at"`
	UpdatedAt timestamp  `json:"updated_at"`
}

func toTaskJSON(t *silo.Task) taskJSON {
	j := taskJSON{
		ID: t.ID, ProjectID: t.ProjectID, Title: t.Title, Done: t.Done,
		CreatedAt: timestamp(t.CreatedAt), UpdatedAt: timestamp(t.UpdatedAt),
	}
	if t.DueAt != nil {
		due := timestamp(*t.DueAt)
		j.DueAt = &due
	}
	return j
}

func (s *Server) handleCreateTask(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Title string       `json:"title"`
		Done  bool         `json:"done"`
		DueAt nullableTime `json:"due_at"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.deps.Tasks.CreateTask(r.Context(), chi.URLParam(r, "id"), silo.NewTask{Title: req.Title, Done: req.Done, DueAt: req.DueAt.Value})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toTaskJSON(t))
}

func (s *Server) handleListTasks(w http.ResponseWriter, r *http.Request) {
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
	ts, next, err := s.deps.Tasks.Tasks(r.Context(), chi.URLParam(r, "id"), page)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]taskJSON, len(ts))
	for i, t := range ts {
		out[i] = toTaskJSON(t)
	}
	writeJSON(w, http.StatusOK, struct {
		Tasks      []taskJSON `json:"tasks"`
		NextCursor *string    `json:"next_cursor"`
	}{out, optional(next)})
}

func (s *Server) handleGetTask(w http.ResponseWriter, r *http.Request) {
	t, err := s.deps.Tasks.Task(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTaskJSON(t))
}

func (s *Server) handleUpdateTask(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Title *string      `json:"title"`
		Done  *bool        `json:"done"`
		DueAt nullableTime `json:"due_at"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.deps.Tasks.UpdateTask(r.Context(), chi.URLParam(r, "id"), silo.TaskUpdate{Title: req.Title, Done: req.Done, SetDueAt: req.DueAt.Set, DueAt: req.DueAt.Value})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTaskJSON(t))
}

func (s *Server) handleDeleteTask(w http.ResponseWriter, r *http.Request) {
	if err := s.deps.Tasks.DeleteTask(r.Context(), chi.URLParam(r, "id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

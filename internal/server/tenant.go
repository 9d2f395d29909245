package server

import (
	"net/http"
	"runtime"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

type tenantJSON struct {
	ID        silo.TenantID `json:"id"`
	Slug      string        `json:"slug"`
	Name      string        `json:"name"`
	Strategy  silo.Strategy `json:"strategy"`
	CreatedAt timestamp     `json:"created_at"`
}

func toTenantJSON(t *silo.Tenant) tenantJSON {
	return tenantJSON{ID: t.ID, Slug: t.Slug, Name: t.Name, Strategy: t.Strategy, CreatedAt: timestamp(t.CreatedAt)}
}

// handleSignup serves POST /api/tenants on the base domain.
func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Slug     string        `json:"slug"`
		Name     string        `json:"name"`
		Strategy silo.Strategy `json:"strategy"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, token, err := s.deps.Admin.Create(r.Context(), tenants.NewTenant{Slug: req.Slug, Name: req.Name, Strategy: req.Strategy})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Tenant tenantJSON `json:"tenant"`
		Token  string     `json:"token"`
	}{toTenantJSON(t), token})
}

// handleOperatorTenants serves GET /api/operator/tenants.
func (s *Server) handleOperatorTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.deps.Admin.ListWithSizes(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type row struct {
		tenantJSON
		Status        string `json:"status"`
		SchemaVersion int64  `json:"schema_version"`
		SizeBytes     int64  `json:"size_bytes"`
	}
	out := make([]row, len(ts))
	for i, t := range ts {
		out[i] = row{toTenantJSON(t.Tenant), t.Status, t.SchemaVersion, t.Bytes}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

// handleStats serves GET /api/operator/stats.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"cache":   s.deps.CacheStats(),
		"process": map[string]any{"goroutines": runtime.NumGoroutine()},
	})
}

// handleMove serves POST /api/operator/tenants/{slug}/move {"to"}: an
// online move between placements. It answers once the move is committed.
func (s *Server) handleMove(w http.ResponseWriter, r *http.Request) {
	var req struct {
		To silo.Strategy `json:"to"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !req.To.Valid() {
		s.writeError(w, r, silo.Errorf(silo.EINVALIDSTRATEGY, "to must be one of %v.", silo.Strategies))
		return
	}
	st, err := s.deps.Admin.Move(r.Context(), operatorSlug(r), req.To)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"move": map[string]any{
		"from": st.From, "to": st.To, "projects": st.Projects, "tasks": st.Tasks,
		"content_hash": st.Hash, "pause_ms": float64(st.Pause.Microseconds()) / 1000,
	}})
}

// handleQuota serves GET and PUT /api/operator/quota {"tenant_max_bytes"}:
// the storage quota of each tenant file, changed without a restart.
func (s *Server) handleQuota(w http.ResponseWriter, r *http.Request) {
	if s.deps.Quota == nil {
		s.writeError(w, r, silo.Errorf(silo.ENOTFOUND, "No such route."))
		return
	}
	if r.Method == http.MethodPut {
		var req struct {
			TenantMaxBytes *int64 `json:"tenant_max_bytes"`
		}
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.TenantMaxBytes == nil || *req.TenantMaxBytes < 0 {
			s.writeError(w, r, silo.Errorf(silo.EINVALID, "tenant_max_bytes must be a number of bytes, 0 for no quota."))
			return
		}
		s.deps.Quota.SetTenantMaxBytes(*req.TenantMaxBytes)
	}
	writeJSON(w, http.StatusOK, map[string]int64{"tenant_max_bytes": s.deps.Quota.TenantMaxBytes()})
}

// handleDeleteTenant serves DELETE /api/operator/tenants/{slug}: the
// tenant's requests are drained, its data removed; its row and backup stay
// for the deleted-retention period.
func (s *Server) handleDeleteTenant(w http.ResponseWriter, r *http.Request) {
	if err := s.deps.Admin.Delete(r.Context(), operatorSlug(r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": operatorSlug(r)})
}

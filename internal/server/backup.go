package server

import (
	"net/http"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

func (s *Server) backups(w http.ResponseWriter, r *http.Request) bool {
	if s.deps.Backups == nil {
		s.writeError(w, r, silo.Errorf(silo.EUNAVAILABLE, "Backups are off (--no-backup)."))
		return false
	}
	return true
}

// handleBackupStatus serves GET /api/operator/backup: each tenant's last
// replicated transaction and time, and its lag.
func (s *Server) handleBackupStatus(w http.ResponseWriter, r *http.Request) {
	if !s.backups(w, r) {
		return
	}
	st, err := s.deps.Backups.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	type row struct {
		Slug         string        `json:"slug"`
		Strategy     silo.Strategy `json:"strategy"`
		TXID         uint64        `json:"txid"`
		ReplicatedAt *timestamp    `json:"replicated_at"`
		Open         bool          `json:"open"`
		LagTxns      uint64        `json:"lag_txns"`
		Error        string        `json:"error,omitempty"`
	}
	out := make([]row, len(st))
	for i, b := range st {
		out[i] = row{Slug: b.Slug, Strategy: b.Strategy, TXID: b.TXID, Open: b.Registered, LagTxns: b.Lag(), Error: b.Err}
		if !b.UpdatedAt.IsZero() {
			at := timestamp(b.UpdatedAt)
			out[i].ReplicatedAt = &at
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

// handleRestore serves POST /api/operator/tenants/{slug}/restore
// {"at": RFC 3339, "txid": n} (both optional: the latest): an in-place
// restore; the tenant answers 503 tenant_restoring meanwhile.
func (s *Server) handleRestore(w http.ResponseWriter, r *http.Request) {
	if !s.backups(w, r) {
		return
	}
	var req struct {
		At   *string `json:"at"`
		TXID *uint64 `json:"txid"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.At != nil && *req.At == "" && req.TXID != nil && *req.TXID == 0 {
		// What `silo restore --server` sent for "the latest" before it
		// sent only the fields given: keep older CLIs working.
		req.At, req.TXID = nil, nil
	}
	at, txid, err := tenants.ParsePoint(req.At, req.TXID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	slug := operatorSlug(r)
	if err := s.deps.Backups.Restore(r.Context(), slug, at, txid); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"restored": slug})
}

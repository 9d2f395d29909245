package catalog

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"

	"github.com/silohq/silo/internal/catalog/catalogsql"
	"github.com/silohq/silo/internal/silo"
)

// tokenPrefix marks Silo tokens so that secret scanners can find leaked ones.
const tokenPrefix = "silo_"

// Token describes an API token; its secret is never stored.
type Token struct {
	ID        string
	Name      string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// NewToken returns a fresh secret (256 random bits) and the hash to store.
func NewToken() (secret string, hash []byte) {
	var b [32]byte
	rand.Read(b[:]) // never fails (Go 1.24+: it crashes the program instead)
	secret = tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret)
}

// HashToken is the stored form of a secret. A plain SHA-256 suffices: the
// secret has 256 bits of entropy, so there is nothing to brute-force.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Authenticate returns nil if secret is an unrevoked token of tenant id, and
// EUNAUTHORIZED otherwise. Every candidate hash is compared in constant time,
// and a token of another tenant is simply not among the candidates.
func (c *Catalog) Authenticate(ctx context.Context, id silo.TenantID, secret string) error {
	if !strings.HasPrefix(secret, tokenPrefix) {
		return silo.Errorf(silo.EUNAUTHORIZED, "A valid bearer token for this tenant is required.")
	}
	gen, err := c.cache.fresh(ctx)
	if err != nil {
		return err
	}
	hashes, cached := c.cache.tokenHashes(id)
	if !cached {
		if hashes, err = c.q.ActiveTokenHashes(ctx, string(id)); err != nil {
			return err
		}
		c.cache.putTokenHashes(gen, id, hashes)
	}
	want := HashToken(secret)
	ok := 0
	for _, h := range hashes {
		ok |= subtle.ConstantTimeCompare(h, want)
	}
	if ok != 1 {
		return silo.Errorf(silo.EUNAUTHORIZED, "A valid bearer token for this tenant is required.")
	}
	return nil
}

// CreateToken adds a token to a tenant and returns its secret, shown once.
func (c *Catalog) CreateToken(ctx context.Context, id silo.TenantID, name string) (string, *Token, error) {
	// Names are shown by `silo tokens list`, one per line in a table.
	name, err := silo.CleanText(name, "token name", silo.EINVALIDNAME)
	if err != nil {
		return "", nil, err
	}
	secret, hash := NewToken()
	row, err := c.wq.CreateToken(ctx, catalogsql.CreateTokenParams{
		ID: silo.NewID(), TenantID: string(id), Name: name, Hash: hash, CreatedAt: c.now().UnixMilli(),
	})
	if err != nil {
		return "", nil, err
	}
	return secret, tokenFromRow(row), nil
}

// Tokens lists a tenant's tokens, revoked ones included.
func (c *Catalog) Tokens(ctx context.Context, id silo.TenantID) ([]*Token, error) {
	rows, err := c.q.ListTokens(ctx, string(id))
	if err != nil {
		return nil, err
	}
	out := make([]*Token, len(rows))
	for i, r := range rows {
		out[i] = tokenFromRow(r)
	}
	return out, nil
}

// RevokeToken revokes one token of a tenant; it stops working at once, since
// every request checks the catalog.
func (c *Catalog) RevokeToken(ctx context.Context, id silo.TenantID, tokenID string) error {
	n, err := c.wq.RevokeToken(ctx, catalogsql.RevokeTokenParams{
		RevokedAt: sqlNullInt(c.now().UnixMilli()), TenantID: string(id), ID: tokenID,
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return silo.Errorf(silo.ENOTFOUND, "No active token %q.", tokenID)
	}
	return nil
}

func tokenFromRow(r catalogsql.Token) *Token {
	t := &Token{ID: r.ID, Name: r.Name, CreatedAt: time.UnixMilli(r.CreatedAt).UTC()}
	if r.RevokedAt.Valid {
		at := time.UnixMilli(r.RevokedAt.Int64).UTC()
		t.RevokedAt = &at
	}
	return t
}

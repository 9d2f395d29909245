package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// callOperator sends one request to a running server's operator API (the
// commands' --server), with body encoded as JSON when not nil, and prints
// its answer. A non-200 answer is an error that quotes it.
func callOperator(ctx context.Context, e env, method, base, token, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, rd)
	if err != nil {
		return &usageError{fmt.Sprintf("--server: %v", err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s: %s", res.Status, bytes.TrimSpace(raw))
	}
	fmt.Fprintf(e.stdout, "%s\n", bytes.TrimSpace(raw))
	return nil
}

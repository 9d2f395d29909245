package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/silohq/silo/internal/server"
)

// callOperator sends one request to a running server's operator API (the
// commands' --server), with body encoded as JSON when not nil, and prints
// its answer. A non-200 answer is an error that quotes it.
func callOperator(ctx context.Context, e env, method, base, token, path string, body any) error {
	raw, err := operatorRequest(ctx, operatorClient, method, base, token, path, body)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\n", raw)
	return nil
}

// operatorClient bounds a --server call: a server that accepts the
// connection and never answers must not hang the command. The bound is
// generous because the answer comes only when the work is done (a move
// copies the whole tenant, a restore downloads it): the server's own bound
// on such calls, and a little more for the answer to arrive.
var operatorClient = &http.Client{
	Timeout: server.OperatorWorkTimeout + 30*time.Second,
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: server.OperatorWorkTimeout + 30*time.Second,
	},
}

// operatorRequest sends one request to a server's operator API and returns
// the body of a 200 answer.
func operatorRequest(ctx context.Context, client *http.Client, method, base, token, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base // --server 127.0.0.1:8080, as one would type it
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &usageError{fmt.Sprintf("--server %q: want http://HOST:PORT, https://HOST or HOST:PORT", base)}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, rd)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("server URL: %v", err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusNotFound && strings.Contains(string(raw), "No such route.") {
		// The server has no such route: its operator API is off, or the
		// URL has a path the server does not serve (a 404 for an unknown
		// host, say, is passed on as it is, below).
		return nil, fmt.Errorf("%s answered %s for %s: either its operator API is off (start silo serve with --operator-token), or --server is not the server's own address (http://HOST:PORT, no path)", base, res.Status, path)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("server answered %s: %s", res.Status, bytes.TrimSpace(raw))
	}
	return bytes.TrimSpace(raw), nil
}

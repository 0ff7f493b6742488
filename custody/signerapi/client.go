package signerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client calls payflow-signer over its Unix socket. Safe for concurrent use.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client of the signer listening on socket. It does not
// connect: a signer that is down shows at the first call, as ErrUnavailable.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     time.Minute,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Socket is the socket the client calls.
func (c *Client) Socket() string { return c.socket }

// Sign asks for the signature of one attempt of one step (see SignRequest).
func (c *Client) Sign(ctx context.Context, req SignRequest) (SignResponse, error) {
	var out SignResponse
	return out, c.call(ctx, http.MethodPost, PathSign, req, &out)
}

// SignBTC asks for the signatures of one attempt of one step on a Bitcoin
// chain (see BTCSignRequest). Its errors are Sign's: ErrRefused,
// ErrUnknownKey and ErrBadRequest never change on a retry (Permanent),
// ErrUnavailable may.
func (c *Client) SignBTC(ctx context.Context, req BTCSignRequest) (BTCSignResponse, error) {
	var out BTCSignResponse
	return out, c.call(ctx, http.MethodPost, PathBTCSign, req, &out)
}

// NewKey asks for a new key on backend.
func (c *Client) NewKey(ctx context.Context, backend string) (KeyInfo, error) {
	var out KeyInfo
	return out, c.call(ctx, http.MethodPost, PathKeys, NewKeyRequest{Backend: backend}, &out)
}

// Import hands a legacy private key (hex) to the signer.
func (c *Client) Import(ctx context.Context, privateKeyHex string) (KeyInfo, error) {
	var out KeyInfo
	return out, c.call(ctx, http.MethodPost, PathImport, ImportRequest{PrivateKey: privateKeyHex}, &out)
}

// Status reads the signer's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	return out, c.call(ctx, http.MethodGet, PathStatus, nil, &out)
}

// BTCAccount asks for the signer's Bitcoin account xpub on network.
func (c *Client) BTCAccount(ctx context.Context, network string) (BTCAccount, error) {
	var out BTCAccount
	return out, c.call(ctx, http.MethodGet, PathBTCAccount+"?network="+url.QueryEscape(network), nil, &out)
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding signer request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://signer"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, c.socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%w: reading its answer: %v", ErrUnavailable, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Code == "" {
			e = Error{Code: CodeInternal, Message: fmt.Sprintf("HTTP %d", resp.StatusCode)}
		}
		if resp.StatusCode >= 500 {
			return fmt.Errorf("%w: %w", ErrUnavailable, &e)
		}
		return &e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: decoding its answer: %v", ErrUnavailable, err)
	}
	return nil
}

package callcount

import (
	"bytes"
	"io"
	"net/http"
)

// Transport counts the JSON-RPC calls of the requests it carries (in
// NodeCalls and NodeRequests) and hands them to next.
func Transport(next http.RoundTripper) http.RoundTripper { return transport{next} }

type transport struct{ next http.RoundTripper }

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Method == http.MethodPost {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		NodeRequests.Inc()
		for _, m := range Methods(b) {
			NodeCalls.WithLabelValues(m).Inc()
		}
	}
	return t.next.RoundTrip(r)
}

var methodKey = []byte(`"method":"`)

// Methods are the method names of a JSON-RPC request body (one call or a
// batch), in order. It scans for the "method" members go-ethereum's client
// writes rather than decoding the parameters.
func Methods(body []byte) []string {
	var out []string
	for {
		i := bytes.Index(body, methodKey)
		if i < 0 {
			return out
		}
		body = body[i+len(methodKey):]
		j := bytes.IndexByte(body, '"')
		if j < 0 {
			return out
		}
		out = append(out, string(body[:j]))
		body = body[j:]
	}
}

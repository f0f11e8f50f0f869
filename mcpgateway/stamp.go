package mcpgateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// metaRequestID is the _meta member in which the downstream transport
// hands a tools/call's JSON-RPC id to the handler (the SDK does not pass
// the id to tool handlers). Whatever a client puts there is overwritten.
const metaRequestID = "io.countersign/jsonrpc-id"

// maxStampBody bounds the request bodies the HTTP stamper reads.
const maxStampBody = 4 << 20

// stamp writes the request's id into the params' _meta of a tools/call.
func stamp(req *jsonrpc.Request) {
	if req.Method != "tools/call" || !req.IsCall() {
		return
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(req.Params, &params); err != nil || params == nil {
		return // the server refuses it as invalid params
	}
	meta := map[string]any{}
	if raw, ok := params["_meta"]; ok {
		if json.Unmarshal(raw, &meta) != nil || meta == nil {
			return
		}
	}
	meta[metaRequestID] = fmt.Sprintf("%T:%v", req.ID.Raw(), req.ID.Raw())
	b, err := json.Marshal(meta)
	if err != nil {
		return
	}
	params["_meta"] = b
	if p, err := json.Marshal(params); err == nil {
		req.Params = p
	}
}

// takeRequestID removes the stamp from the params (it is not forwarded)
// and returns it.
func takeRequestID(p *mcp.CallToolParamsRaw) string {
	if p == nil || p.Meta == nil {
		return ""
	}
	id, _ := p.Meta[metaRequestID].(string)
	delete(p.Meta, metaRequestID)
	return id
}

// StampTransport wraps a downstream transport so that tool handlers learn
// each call's JSON-RPC id.
func StampTransport(t mcp.Transport) mcp.Transport { return stampTransport{t} }

type stampTransport struct{ mcp.Transport }

func (t stampTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return stampConn{c}, nil
}

type stampConn struct{ mcp.Connection }

func (c stampConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	m, err := c.Connection.Read(ctx)
	if r, ok := m.(*jsonrpc.Request); ok && err == nil {
		stamp(r)
	}
	return m, err
}

// StampHTTP does the same for a streamable-HTTP handler: it rewrites the
// body of a POST that holds one tools/call request.
func StampHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Body == nil {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxStampBody+1))
		r.Body.Close()
		if err != nil {
			http.Error(w, "cannot read the request", http.StatusBadRequest)
			return
		}
		if len(body) > maxStampBody {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		if m, err := jsonrpc.DecodeMessage(body); err == nil {
			if req, ok := m.(*jsonrpc.Request); ok && req.Method == "tools/call" {
				stamp(req)
				if b, err := jsonrpc.EncodeMessage(req); err == nil {
					body = b
				}
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

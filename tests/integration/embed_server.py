"""A small HTTP embedding server for the tests: speaks the OpenAI contract (POST
/v1/embeddings {"model","input":[...],"dimensions"?} -> {"data":[{"embedding","index"}]})
and the external one (POST /embed {"texts":[...],"model"?} -> {"embeddings":[...]}); and a
reranker (POST /rerank {"query","documents","top_n","model"?} -> {"results":[{"index",
"relevance_score"}]}, or a bare [{"index","score"}] list with rerank_bare) that scores a
document by the number after "prio" in it (rerank_score).

Vectors are deterministic bags of hashed words (dims floats, L2-normalised), so texts that
share words are close. Knobs for failure tests: fail_next (answer that many requests with
500), delay_s (sleep before answering), bad_dims (answer vectors of another size),
rerank_fail (answer that many /rerank requests with 503). Every
request is recorded (path, headers, body)."""
import hashlib
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def bag_vector(text, dims):
    v = [0.0] * dims
    for w in re.findall(r"\w+", text.lower()):
        h = int.from_bytes(hashlib.sha256(w.encode()).digest()[:8], "little")
        v[h % dims] += 1.0 if (h >> 32) & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n else v


def rerank_score(doc):
    m = re.search(r"prio (\d+)", doc)
    return float(m.group(1)) if m else -1.0


class EmbedServer:
    def __init__(self, dims=16):
        self.dims = dims
        self.fail_next = 0
        self.delay_s = 0.0
        self.bad_dims = False
        self.rerank_fail = 0
        self.rerank_bare = False
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append((self.path, dict(self.headers), raw))
                    fail = outer.fail_next > 0
                    if fail:
                        outer.fail_next -= 1
                    delay, bad = outer.delay_s, outer.bad_dims
                if self.path == "/rerank":
                    return self.rerank(raw)
                if delay:
                    time.sleep(delay)
                if fail:
                    return self.answer(500, {"error": {"message": "injected failure"}})
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.answer(400, {"error": "bad json"})
                dims = outer.dims + (3 if bad else 0)
                if self.path == "/v1/embeddings":
                    texts = body.get("input")
                    if isinstance(texts, str):
                        texts = [texts]
                    dims = body.get("dimensions") or dims
                    data = [{"object": "embedding", "index": i, "embedding": bag_vector(t, dims)}
                            for i, t in enumerate(texts)]
                    data.reverse()  # clients must order by index
                    return self.answer(200, {"object": "list", "data": data, "model": body.get("model")})
                if self.path == "/embed":
                    return self.answer(200, {"embeddings": [bag_vector(t, dims) for t in body["texts"]]})
                return self.answer(404, {"error": "no such path"})

            def rerank(self, raw):
                with outer.lock:
                    fail = outer.rerank_fail > 0
                    if fail:
                        outer.rerank_fail -= 1
                    bare = outer.rerank_bare
                if fail:
                    return self.answer(503, {"error": {"message": "reranker overloaded"}})
                body = json.loads(raw)
                docs = body["documents"]
                scored = sorted(((rerank_score(d), i) for i, d in enumerate(docs)), reverse=True)
                scored = scored[:body.get("top_n") or len(docs)]
                if bare:
                    return self.answer(200, [{"index": i, "score": s} for s, i in scored])
                return self.answer(200, {"results": [{"index": i, "relevance_score": s} for s, i in scored]})

            def answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def texts_seen(self):
        out = []
        with self.lock:
            for path, _h, raw in self.requests:
                try:
                    b = json.loads(raw)
                except ValueError:
                    continue
                t = b.get("input") if path == "/v1/embeddings" else b.get("texts")
                out.extend(t if isinstance(t, list) else [t])
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

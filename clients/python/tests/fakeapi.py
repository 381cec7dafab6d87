"""A stand-in for the status API, for the unit tests: a real HTTP server
on 127.0.0.1:0 or a unix socket, answering from a script of responses and
recording each request. The e2e suite (supervisor/e2e) runs the package
against the real daemon."""

import http.server
import json
import os
import socketserver
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

Answer = Tuple[int, Dict[str, str], bytes]


def answer(status: int, body: Any = None, headers: Optional[Dict[str, str]] = None) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, raw


class Request:
    def __init__(self, method: str, path: str, headers: Dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class FakeAPI:
    """Answers each request with respond(request), by default 200 {}."""

    def __init__(self, unix: bool = False) -> None:
        self.requests: List[Request] = []
        self.respond: Callable[[Request], Answer] = lambda r: answer(200, {})
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(n))
                fake.requests.append(req)
                status, headers, raw = fake.respond(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

            def address_string(self) -> str:
                return "test"

        if unix:
            self._dir = tempfile.TemporaryDirectory()
            path = os.path.join(self._dir.name, "api.sock")

            class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
                daemon_threads = True

            self.server: socketserver.BaseServer = Server(path, Handler)
            self.base = "unix:" + path
        else:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self.base = "http://127.0.0.1:%d" % self.server.server_address[1]
        # A short poll interval: close() waits for one.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
        if hasattr(self, "_dir"):
            self._dir.cleanup()

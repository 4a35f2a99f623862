"""Serve the app as configured by the environment (TESSERA_*), on a free loopback port
printed as the first line, for fault tests that need the production wiring (a Redis
queue and rate-limit store) in a process of its own: `python -m tests.faults.serve`."""
from __future__ import annotations

from werkzeug.serving import make_server

from portal import create_app

if __name__ == "__main__":
    # The test client speaks plain form posts; CSRF is no part of what these tests break.
    app = create_app({"WTF_CSRF_ENABLED": False})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()

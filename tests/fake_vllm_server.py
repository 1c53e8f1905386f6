"""A stand-in for `trl vllm-serve` (TRL 1.15 execs `vllm serve`): answers the endpoints TRL's
VLLMClient calls before training (`/health`, `/v1/models`, `/get_world_size`) so that
visionr1.vllm_server's lifecycle can be tested on CPU as a real subprocess.

    python tests/fake_vllm_server.py --model M --host H --port P [--delay S] [--exit-code N]
        [--ignore-sigterm] [--worker]

--delay: seconds before it listens (a model loading); --exit-code: print an error and exit with N
before listening; --ignore-sigterm: only SIGKILL ends it; --worker: start a child process in the
same process group, like vLLM's engine core. It prints `pid=<pid> worker=<pid>` first.
"""

import argparse
import json
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--exit-code", type=int, default=None)
    ap.add_argument("--ignore-sigterm", action="store_true")
    ap.add_argument("--worker", action="store_true")
    a = ap.parse_args()
    if a.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]) if a.worker else None
    import os

    print(f"pid={os.getpid()} worker={worker.pid if worker else None}", flush=True)
    time.sleep(a.delay)
    if a.exit_code is not None:
        print("RuntimeError: CUDA out of memory (fake)", flush=True)
        return a.exit_code

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            answers = {"/health": {}, "/v1/models": {"data": [{"id": a.model}]}, "/get_world_size": {"world_size": 1}}
            body = answers.get(self.path.rstrip("/") or "/")
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, fmt, *args):
            print("request " + fmt % args, flush=True)

    server = ThreadingHTTPServer((a.host, a.port), Handler)
    print(f"listening on {a.host}:{a.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Runs SkyServe's load balancer alone, on 127.0.0.1, for the overhead benchmark.

Executed by the interpreter of the `skypilot` venv that benchmarks/peers.py installs (never by
the project's). The load balancer asks its controller for the ready replicas; the canned
upstream answers that sync itself, so `--controller` is the upstream's URL. SkyServe binds
0.0.0.0; the only change made here is the listen address, to loopback.

    <cache>/venvs/skypilot/bin/python benchmarks/skyserve_lb.py --controller URL --port P
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from sky.serve import load_balancer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--controller", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--policy", default=None)
    args = parser.parse_args()
    serve = uvicorn.run

    def serve_on_loopback(app: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        serve(app, **kwargs)

    # The load balancer calls `uvicorn.run(app, host="0.0.0.0", ...)`: same call, loopback host.
    setattr(uvicorn, "run", serve_on_loopback)  # noqa: B010 - mypy forbids assigning a function
    load_balancer.run_load_balancer(args.controller, args.port, args.policy)


if __name__ == "__main__":
    main()

"""Request ids: the one function that makes them.

Every answer carries one as `x-request-id`; chat and completion answers use it as their own
response id (`chatcmpl-...`, `cmpl-...`, as OpenAI shapes them), and the ledger keys its row on
it.
"""

from __future__ import annotations

import os

REQUEST_PREFIX = "req_"


def new_request_id(prefix: str = REQUEST_PREFIX) -> str:
    # os.urandom is what secrets.token_hex calls, without its three Python frames per request
    return prefix + os.urandom(16).hex()

"""The relay: one request through the named stages, for any entry of the endpoint table.

`relay` runs the stages and closes the request's `exchange` (its ledger row and log line)
exactly once; `connect` chooses a backend and sends, retrying where it is safe; `streaming`
relays a stream and accounts it when it ends; `replies` are the ASGI answers, errors included.
"""

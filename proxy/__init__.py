"""The Warmgate edge: an OpenAI-compatible gateway in front of SGLang replicas.

A request goes, folder by folder: `http` (the entry: hot lane, routes, server) → `pipeline`
(the relay running the stages for an entry of the `endpoints` table) → `keys` (authenticate,
authorize) → `wire` (decode) → `routing` (resolve, choose a backend) → `limits` (admit) →
`upstream` (connect) → `answers` (respond: the backend's answer made OpenAI's) → `ledger`
(account). `store` holds the databases keys and ledger share, `observability` the logs and
metrics; `errors`, `media`, `ids` and `settings` are what every stage speaks. `runtime` builds
and owns the resources; `cli` is the `warmgate` command. A stage imports only the stages
before it (checked by `make lint`).
"""

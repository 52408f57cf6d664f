"""Gateway settings: a TOML file read into msgspec Structs, or the embedded defaults.

Every section is a Struct of its own, and every field's default is the one documented in
docs/configuration.md (a test keeps the two in step).
Secrets never appear in the file: fields ending in `_env` name the environment variable that
holds one, and only the process that needs a secret reads it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import msgspec

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DATA_DIR = "warmgate-data"
# A 128k-token prompt is about 0.5 MB of text; images travel base64 inside the body.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
EMBEDDED_MODEL = "demo"

Policy = Literal["cache_aware", "consistent_hash", "least_outstanding", "round_robin"]

PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Ratio = Annotated[float, msgspec.Meta(ge=0, le=1)]


class BackendSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One SGLang server (or a SkyServe endpoint) that serves a model."""

    url: str
    # Name of the environment variable holding the backend's `--api-key`; never the key itself.
    api_key_env: str | None = None
    # Where the replica runs; an edge prefers backends of its own `[server] region`.
    region: str | None = None


class ModelSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    # The name SGLang serves (`--served-model-name`); the public name when unset.
    served_name: str | None = None
    aliases: list[str] = msgspec.field(default_factory=list)
    # Flat USD per billed request; a TOML string ("0.002") keeps it exact.
    price_per_request: Decimal = Decimal(0)
    # The longest prompt plus completion the model takes: `max_tokens` above it is a 400.
    context_length: PositiveInt | None = None
    # An embedding model's vector width: `dimensions` above it is a 400. Unset: the gateway
    # still refuses `dimensions` above MAX_EMBEDDING_DIMENSIONS.
    embedding_dimensions: PositiveInt | None = None
    policy: Policy = "cache_aware"
    backends: list[BackendSettings] = msgspec.field(default_factory=list)
    # This model's own first-byte budget ([upstream] first_byte_timeout_s,
    # first_byte_s_per_prompt_token, answer_timeout_s); unset: the [upstream] value.
    first_byte_timeout_s: NonNegativeSeconds | None = None
    first_byte_s_per_prompt_token: NonNegativeSeconds | None = None
    answer_timeout_s: NonNegativeSeconds | None = None


class UpstreamSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The forwarding client. A stream's first byte arrives only at time-to-first-token (a
    128k-token prefill, a deep queue), so nothing bounds a whole request: connecting, the first
    byte (a budget that grows with the prompt) and the silence between two reads are bounded."""

    connect_timeout_s: float = 3.0
    # Longest wait for the next bytes, the first ones (TTFT) included.
    read_timeout_s: float = 900.0
    max_connections: int = 1024
    max_connections_per_backend: int = 512
    # SGLang (uvicorn) closes idle connections after 5 s; drop ours first.
    keepalive_expiry_s: float = 4.0
    # Attempts per request, the first included; retries happen only before any byte reached
    # the client and only where the backend cannot have started (refused connection, 503).
    max_attempts: int = 3
    # A wedged replica (a stopped process, a stuck engine) accepts connections and never
    # answers: an attempt whose first byte (a stream's first chunk) has not arrived within
    # this budget is abandoned, its connection closed, and the request tried elsewhere. 0: no
    # budget (only `read_timeout_s` bounds the wait).
    first_byte_timeout_s: NonNegativeSeconds = 60.0
    # Added to the budget per estimated prompt token, so that a long prefill is not taken
    # for a wedge: 128k tokens add 64 s.
    first_byte_s_per_prompt_token: NonNegativeSeconds = 0.0005
    # A whole (non-streamed) answer's first byte comes with its last token: its budget is
    # this instead of `first_byte_timeout_s` (plus the prompt allowance). 0: no budget.
    answer_timeout_s: NonNegativeSeconds = 300.0
    # Consecutive first-byte timeouts that eject a backend from the pool, even while its
    # probes are excused as busy; passing probes readmit it.
    eject_after_timeouts: PositiveInt = 3
    # A request whose failure could be its own doing (the connection dropped after the body
    # was sent, a first-byte timeout) is sent to at most this many backends (one that refused
    # the connection never had it): a query of death must not take the whole fleet down.
    suspect_attempts: PositiveInt = 2
    # Envoy's retry budget: the retries of the last 10 s stay below max(retry_budget_min,
    # retry_budget_ratio x requests of the last 10 s); a retry past it is refused (the
    # request gets the last failure) and counted. Retries after a refused connection are not
    # counted: that backend never had the request, and they are how traffic leaves replicas
    # that went down before their probes eject them.
    retry_budget_ratio: Ratio = 0.2
    retry_budget_min: Annotated[int, msgspec.Meta(ge=0)] = 3


class RoutingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a request picks a backend among the healthy ones serving its model."""

    # The policy of every model that does not name its own.
    policy: Policy = "cache_aware"
    # cache_aware, as SGLang's router: follow the longest prefix match when more than this
    # share of the request text matched ...
    cache_threshold: Ratio = 0.3
    # ... unless load is imbalanced: max - min > abs AND max > rel * min (outstanding requests).
    balance_abs_threshold: Annotated[int, msgspec.Meta(ge=0)] = 64
    balance_rel_threshold: Annotated[float, msgspec.Meta(ge=1)] = 1.5
    # Characters of request text kept in one model's prefix tree before LRU eviction, each of
    # its nodes counted as 450 more (what its bookkeeping weighs): about as many bytes.
    max_tree_chars: PositiveInt = 8_000_000
    # Only the first characters of a request take part in prefix matching (about 16k tokens;
    # the request pipeline should extract this much text for RouteHint.prefix).
    max_prefix_chars: PositiveInt = 65_536
    # Rendezvous hashing (consistent_hash, and cache_aware when no prefix matched): every
    # edge and worker ranks the backends alike from a hash of the first `hash_prefix_chars`
    # of the request text, so a conversation lands on the same replica whichever edge takes
    # the turn. Short enough that a conversation's first turn holds it (its system prompt).
    hash_prefix_chars: PositiveInt = 256
    # Bounded load: a backend with more than this x the mean requests in flight, plus
    # `hash_load_slack`, is skipped for the next one in the conversation's order. The slack
    # keeps light load from spilling: each edge counts only its own requests, and a few of
    # them more or less differ from edge to edge; a spill costs the conversation its cache.
    hash_load_factor: Annotated[float, msgspec.Meta(ge=1)] = 1.25
    hash_load_slack: Annotated[int, msgspec.Meta(ge=0)] = 4
    # A backend whose own load report shows this share of its KV cache in use is saturated:
    # an edge then spills to another region rather than queue behind it.
    saturated_token_usage: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.95
    # Weight of a new probe round trip in each backend's RTT average (EWMA), which ranks the
    # other regions when the edge's own has no routable backend.
    rtt_smoothing: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.3
    # Polling of SGLang's own load view (`GET /v1/loads`); 0 turns it off.
    load_poll_interval_s: NonNegativeSeconds = 5.0
    load_poll_timeout_s: PositiveSeconds = 2.0
    # The backends document written by `warmgate fleet sync`, reloaded when it changes.
    backends_document: str | None = None
    document_poll_interval_s: PositiveSeconds = 2.0
    # Tell each SkyServe controller the document names (`controllers`) how many requests this
    # edge sent to its service's replicas, as SkyServe's own load balancer does, so that its
    # autoscaler sees the traffic that edges send straight to the replicas.
    report_to_controllers: bool = True
    controller_report_interval_s: PositiveSeconds = 20.0
    controller_report_timeout_s: PositiveSeconds = 5.0


class HealthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Active probes, the passive circuit breaker and slow start."""

    # Active probes; `enabled = false` treats every backend as healthy until it fails.
    enabled: bool = True
    # /health_generate runs a real one-token generation: it is also our keep-warm.
    probe_path: str = "/health_generate"
    interval_s: PositiveSeconds = 10.0
    # SGLang answers /health_generate only after a scheduler step (>= 1 s) and gives up
    # itself after 20 s.
    timeout_s: PositiveSeconds = 5.0
    eject_after: PositiveInt = 2
    # A probe that times out while requests are in flight does not count against a backend
    # that showed a sign of life (a chunk, a load report) within this many seconds: its probe
    # is queued behind a long prefill, not lost.
    busy_grace_s: PositiveSeconds = 300.0
    readmit_after: PositiveInt = 2
    # Passive: consecutive connection errors, 5xx and timeouts before the first byte.
    breaker_failures: PositiveInt = 3
    breaker_cooldown_s: PositiveSeconds = 10.0
    breaker_close_after: PositiveInt = 1
    # A readmitted backend starts at `slow_start_floor` of its share, rising to all of it.
    slow_start_s: NonNegativeSeconds = 30.0
    slow_start_floor: Ratio = 0.1


class AuthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """API keys and admin access."""

    # Off: every request is served as the anonymous key (benchmarks of the bare relay only).
    enabled: bool = True
    # The environment variable holding the admin key for /admin/* and `warmgate keys --url`.
    admin_key_env: str | None = "WARMGATE_ADMIN_KEY"
    # How often each edge reloads keys from the store (a revocation reaches it within this).
    refresh_interval_s: float = 2.0


class StaticKeySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A key declared in the file; its secret comes from the environment."""

    name: str
    secret_env: str
    allowed_models: list[str] | None = None
    rpm: int | None = None
    max_concurrency: int | None = None
    quota: int | None = None
    quota_period: Literal["day", "month"] | None = None


class LimitsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-key limits (requests per minute, concurrent requests, a quota per day or month):
    held in this process, or shared through Redis by every worker and edge.

    What each mode guarantees, for every one of the three limits:
    - No `redis_url`, one process: exact; quotas resume from the ledger after a restart.
    - No `redis_url`, several workers of one edge: they cannot share counters, so each
      enforces its part of every limit (the parts sum to the limit, one more unit to some
      workers when it does not divide): no key ever gets more than its limit, but a key whose
      requests all reach one worker gets only that worker's part, possibly 0 (a limit of 1
      with 2 workers). Use Redis to share limits exactly among workers.
    - `redis_url`, Redis reachable: never exceeded across all workers and edges. Each process
      holds a few units leased ahead (at most 5 % of a limit in all; none for limits under
      20 per process), so a request rarely waits a round trip to Redis; units held unused
      by one process can make a key get up to 5 % less elsewhere for a short while.
    - `redis_url`, Redis unreachable: never open. Each process admits what it holds plus
      `local_share` (unset: 1 / the number of live processes, counted through Redis) of what
      was left of each limit when it last heard from Redis, logs one line, counts every
      decision, and goes back to shared limits on its own once Redis answers.
    """

    # Off: no per-key limit is enforced and no x-ratelimit-* header is sent (the model
    # allow-list still holds: it is authorization, not a limit).
    enabled: bool = True
    # Redis shared by every edge, as a URL; or the name of the environment variable holding
    # it (`redis_url_env`), so that no password sits in the file. At most one of the two.
    redis_url: str | None = None
    redis_url_env: str | None = None
    # The requests per minute of every key with neither an rpm nor a quota (its answers carry
    # the x-ratelimit-* headers of that window); 0: such keys are unlimited, without headers.
    default_rpm: Annotated[int, msgspec.Meta(ge=0)] = 6000
    # The part of each limit one process enforces while Redis is unreachable; unset: 1 / the
    # number of live processes Redis last counted (before any answer: this edge's workers).
    local_share: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    # Longest wait for Redis (a free connection, then its answer) before a request is decided
    # on the local share; a cross-region Redis needs more than its round trip.
    store_timeout_s: PositiveSeconds = 1.0


class LedgerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The request ledger. `url` unset means a SQLite file under `data_dir`."""

    # Off: no row is written (benchmarks of the bare relay only).
    enabled: bool = True
    # The store of keys and ledger: `sqlite:///path` or `postgresql://...`; or the name of
    # the environment variable holding it (`url_env`), so that no password sits in the file.
    url: str | None = None
    url_env: str | None = None
    flush_interval_ms: int = 100
    batch_rows: int = 500
    # Each row is appended to a file under `data_dir` before its answer leaves, and replayed at
    # the next start if it was not stored: a killed process loses no answered row. Off: it may
    # lose the rows of its last flush window.
    spool: bool = True
    # Usage and admin reads (and the flush before them) answer 503 past this; a flush that
    # takes longer than `write_timeout_s` is given up and retried.
    read_timeout_s: PositiveSeconds = 5.0
    write_timeout_s: PositiveSeconds = 10.0


class BindingsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Responses API ids bound to the backend holding each response."""

    # Written through to the gateway's database (`[ledger] url`): every edge on it finds every
    # response, also after a restart. Off: this edge's memory only.
    shared: bool = True
    # Bindings kept in this edge's memory (the newest); others cost one database read.
    cache_entries: PositiveInt = 100_000
    # An answer that creates a response waits at most this for its binding to be written.
    write_wait_s: PositiveSeconds = 2.0
    # A request naming a response this edge does not know answers 503 past this.
    read_timeout_s: PositiveSeconds = 2.0
    retention_days: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The HTTP edge itself."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Audio uploads (POST /v1/audio/transcriptions): OpenAI's limit is 25 MB per file.
    max_audio_bytes: int = 25 * 1024 * 1024
    cors_allow_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
    # One JSON line per request on stdout (at log level info or debug).
    access_log: bool = True
    # The least severe log line written: lifecycle events are info, trouble warning or error.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # On SIGTERM: /ready answers 503 and new requests are refused at once; requests in flight
    # (a stream may still be generating) get this long to finish before the process exits.
    drain_timeout_s: NonNegativeSeconds = 30.0
    # Processes serving the one port (each with its own event loop); 0: one per CPU core.
    # Limits are exact across them with Redis; the ledger and keys are shared by the store.
    workers: Annotated[int, msgspec.Meta(ge=0)] = 1
    # The edge's own region: routing prefers backends of this region and spills to the
    # nearest other one (by probe RTT) only while none here is routable and unsaturated.
    # Unset: every backend is equally near.
    region: str | None = None

    # A request's head: its request line and header fields, in bytes (a longer URL gets 414,
    # more header bytes 431), and how many header fields (more get 431). The connection is
    # closed after either answer.
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 32 * 1024
    max_header_count: PositiveInt = 100
    # A client must send its whole head within this long of connecting (or, on a kept-alive
    # connection, of its first byte): else 408 and the connection is closed (slowloris).
    header_timeout_s: PositiveSeconds = 10.0
    # The largest backend answer held in memory: a whole (non-streamed) answer, or one event
    # of a stream. A larger one is a 502 and the backend's connection is closed.
    max_answer_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024 * 1024
    # The environment variable holding the key `GET /metrics` asks for (`Authorization:
    # Bearer <key>`); unset: /metrics is open, as Prometheus scrapes by default.
    metrics_key_env: str | None = None


class TracingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """W3C trace context and OpenTelemetry export. A request's `traceparent`/`tracestate`
    always reach the backend; `enabled` adds the gateway's own spans, exported over OTLP/HTTP
    (the `otel` extra: `pip install 'warmgate[otel]'`)."""

    enabled: bool = False
    # The collector's OTLP/HTTP traces URL; its headers, if it needs any, come from the
    # standard OTEL_EXPORTER_OTLP_HEADERS variable, never from this file.
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "warmgate"
    # The share of new traces recorded; a request that arrives sampled (or not) keeps that.
    sample_ratio: Ratio = 1.0


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What `/metrics` shows beyond its fixed series."""

    # Per-key series (requests, billed requests, revenue) for the busiest keys only, so that
    # their number stays bounded; 0 turns them off.
    top_keys: Annotated[int, msgspec.Meta(ge=0)] = 20


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: str = DEFAULT_DATA_DIR
    models: list[ModelSettings] = msgspec.field(default_factory=list)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    upstream: UpstreamSettings = msgspec.field(default_factory=UpstreamSettings)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    keys: list[StaticKeySettings] = msgspec.field(default_factory=list)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    ledger: LedgerSettings = msgspec.field(default_factory=LedgerSettings)
    tracing: TracingSettings = msgspec.field(default_factory=TracingSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    bindings: BindingsSettings = msgspec.field(default_factory=BindingsSettings)

    @property
    def ledger_url(self) -> str:
        """The ledger's database URL: the configured one, else SQLite under `data_dir`."""
        if self.ledger.url:
            return self.ledger.url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'ledger.sqlite3'}"


class SettingsError(Exception):
    """The configuration file cannot be read or does not fit the schema."""


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read a TOML file; errors name the offending field (`$.models[0].backends[1].url`).

    A relative `data_dir` is taken relative to the file's folder (the default included), so
    that a file means the same state wherever the command runs; URLs named by `*_env` fields
    are read from `environ` (the process environment by default)."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc
    settings = parse_settings(raw, source=str(path))
    data_dir = Path(path).parent / settings.data_dir
    settings = msgspec.structs.replace(settings, data_dir=str(data_dir))
    return resolve_env_urls(settings, os.environ if environ is None else environ, source=str(path))


def resolve_env_urls(
    settings: Settings, environ: Mapping[str, str], *, source: str = "settings"
) -> Settings:
    """The settings with `[ledger] url` and `[limits] redis_url` read from the environment
    variables their `*_env` fields name."""
    ledger, limits = settings.ledger, settings.limits
    try:
        ledger_url = _env_url(ledger.url, ledger.url_env, "ledger", "url", environ)
        redis_url = _env_url(limits.redis_url, limits.redis_url_env, "limits", "redis_url", environ)
        return msgspec.structs.replace(
            settings,
            ledger=msgspec.structs.replace(ledger, url=ledger_url, url_env=None),
            limits=msgspec.structs.replace(limits, redis_url=redis_url, redis_url_env=None),
        )
    except ValueError as exc:
        raise SettingsError(f"{source}: {exc}") from exc


def _env_url(
    url: str | None, variable: str | None, section: str, field: str, environ: Mapping[str, str]
) -> str | None:
    if variable is None:
        return url
    if url is not None:
        raise ValueError(f"[{section}] sets both {field} and {field}_env: keep one")
    value = environ.get(variable)
    if not value:
        raise ValueError(f"environment variable {variable} ([{section}] {field}_env) is not set")
    return value


def parse_settings(raw: Mapping[str, object], *, source: str = "settings") -> Settings:
    try:
        settings = msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{source}: {exc}") from exc
    check_settings(settings, source=source)
    return settings


def check_settings(settings: Settings, *, source: str = "settings") -> None:
    """Cross-field rules a schema cannot state: unique public names, a backend per model."""
    seen: set[str] = set()
    for model in settings.models:
        for name in (model.name, *model.aliases):
            if name in seen:
                raise SettingsError(f"{source}: model name or alias {name!r} is used twice")
            seen.add(name)
        if not model.backends and not settings.routing.backends_document:
            raise SettingsError(f"{source}: model {model.name!r} has no backends")
        if model.price_per_request < 0:
            raise SettingsError(f"{source}: model {model.name!r} has a negative price")


def embedded_settings(
    backend_urls: list[str],
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_dir: str = DEFAULT_DATA_DIR,
    server: ServerSettings | None = None,
) -> Settings:
    """The settings `warmgate serve` runs on without a file: model `demo` on the given
    (simulator) backends, state under `data_dir`; `server` as the command line set it."""
    model = ModelSettings(
        name=EMBEDDED_MODEL,
        price_per_request=Decimal("0.001"),
        context_length=32768,
        backends=[BackendSettings(url=url) for url in backend_urls],
    )
    return Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        models=[model],
        server=server if server is not None else ServerSettings(),
    )

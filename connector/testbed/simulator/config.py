"""`SimulatorConfig`: every knob of the simulator, validated (pydantic), with defaults from genesys-api.md.

VERIFIED values are the defaults (page size 25, 31-day interval cap, 100,000 pagination cap, token
lifetime 86399 s). Uncertain behaviour (INFERRED/FOLKLORE) is configurable: max page size (100), the
7-day-without-filters cap (off), 401 code, rate limit (300/60 s), totalHits jitter, duplicate rate, data
lake lag and step, job timings, job caps (concurrency, interval), mutation delays, a fixed (wrong)
totalHits, and the indexing hazards of the query endpoint (unstable tie order, late indexing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, SkipValidation, field_validator

from connector.clock import Clock
from connector.testbed.simulator.auth import ALL_PERMISSIONS, ClientCredentials
from connector.testbed.simulator.faults import parse_fault
from connector.testbed.simulator.isotime import DAY_MS, to_ms

DEFAULT_CLIENT_ID = "demo-client"
DEFAULT_CLIENT_SECRET = "demo-secret"  # noqa: S105 - documented demo credential, not a real secret


class SimulatorClient(BaseModel):
    """An OAuth client of the simulated org."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    permissions: tuple[str, ...] = ALL_PERMISSIONS

    def credentials(self) -> ClientCredentials:
        """The auth-layer view (secret revealed only to the token check)."""
        return ClientCredentials(
            self.client_id, self.client_secret.get_secret_value(), tuple(self.permissions)
        )


def _default_clients() -> list[SimulatorClient]:
    return [SimulatorClient(client_id=DEFAULT_CLIENT_ID, client_secret=SecretStr(DEFAULT_CLIENT_SECRET))]


class SimulatorConfig(BaseModel):
    """Configuration of one simulator instance. All durations are seconds unless the name says otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    # --- data -------------------------------------------------------------------------------------
    seed: int = 1
    history_days: float = Field(default=2.0, ge=0)
    history_start: datetime | None = None  # explicit history range (overrides history_days)
    history_end: datetime | None = None  # default: now; never later than now
    volume_per_hour: float = Field(default=120.0, ge=0)  # history conversations per hour (daily average)
    diurnal: bool = True  # shape history volume by hour of day
    # --- live traffic and mutations ---------------------------------------------------------------
    live_rate_per_minute: float = Field(default=0.0, ge=0)  # new conversations per minute (0 = none)
    live_duration_s: float | None = Field(
        default=None, gt=0
    )  # live conversations last this long (None: realistic)
    ingest_delay_s: float = Field(
        default=2.0, ge=0
    )  # a new conversation's start is up to this far in the past
    live_tick_s: float = Field(default=0.2, gt=0)
    acw_delay_s: float = Field(default=30.0, ge=0)  # wrap-up appears this long after the end
    evaluation_delay_s: float = Field(default=3600.0, ge=0)
    survey_delay_s: float = Field(default=1800.0, ge=0)
    reprocess_delay_s: float = Field(default=172_800.0, ge=0)
    evaluation_probability: float = Field(default=0.10, ge=0, le=1)
    survey_probability: float = Field(default=0.15, ge=0, le=1)
    reprocess_probability: float = Field(default=0.02, ge=0, le=1)
    progress_updates: bool = True  # open conversations change once halfway through
    # --- query semantics ----------------------------------------------------------------------------
    default_page_size: int = Field(default=25, ge=1)
    max_page_size: int = Field(default=100, ge=1)
    pagination_cap: int = Field(default=100_000, ge=1)
    max_interval_days: float = Field(default=31.0, gt=0)
    seven_day_cap_without_filters: bool = False
    strict_dimensions: bool = True  # 400 on filter dimensions the SDK enums do not list
    total_hits_jitter: float = Field(default=0.02, ge=0, lt=1)
    # Report this totalHits on every query page instead of the (jittered) real count: a wrong estimate,
    # e.g. 250000 for a window of 300, or 0 with full pages (totalHits is only an estimate, §1.2).
    fixed_total_hits: int | None = Field(default=None, ge=0)
    duplicate_probability: float = Field(default=0.01, ge=0, le=1)
    multiget_max_ids: int = Field(default=100, ge=1)
    # --- auth and limits ----------------------------------------------------------------------------
    clients: list[SimulatorClient] = Field(default_factory=_default_clients)
    token_ttl_s: int = Field(default=86_399, ge=1)
    unauthorized_code: str = "bad.credentials"
    rate_limit: int = Field(default=300, ge=1)
    rate_window_s: float = Field(default=60.0, gt=0)
    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)
    faults: dict[str, float] = Field(default_factory=dict)  # probabilities on every /api/v2 route
    # --- jobs ----------------------------------------------------------------------------------------
    job_queued_s: float = Field(default=1.0, ge=0)
    job_pending_s: float = Field(default=2.0, ge=0)
    job_ttl_s: float = Field(default=86_400.0, gt=0)
    job_default_page_size: int = Field(default=100, ge=1)
    job_max_page_size: int = Field(default=1000, ge=1)
    job_failure_probability: float = Field(default=0.0, ge=0, le=1)
    job_max_interval_days: float | None = Field(default=31.0, ge=0)  # INFERRED; None or 0 = no cap
    max_concurrent_jobs: int = Field(default=5, ge=0)  # QUEUED+PENDING per org; FOLKLORE; 0 = unlimited
    data_lake_lag_s: float = Field(default=3600.0, ge=0)
    data_lake_step_s: float = Field(default=3600.0, gt=0)  # availability advances in steps (INFERRED)
    # --- indexing hazards of the query endpoint (genesys-api.md §1.4, §7) ---------------------------
    unstable_tie_order: bool = False  # equal sort values come back in a random order per request
    start_granularity_s: float = Field(default=0.0, ge=0)  # round generated starts down (0 = ms)
    late_index_probability: float = Field(default=0.0, ge=0, le=1)  # share indexed late for the query
    late_index_delay_s: float = Field(default=86_400.0, ge=0)  # ...visible this long after their start
    # --- runtime ---------------------------------------------------------------------------------------
    render_cache_size: int = Field(default=2048, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "warning"
    clock: SkipValidation[Clock | None] = Field(default=None, exclude=True)

    @field_validator("history_start", "history_end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a timezone, e.g. 2026-05-01T00:00:00Z")
        return value

    @field_validator("faults")
    @classmethod
    def _faults(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, p in value.items():
            parse_fault(kind)
            if not 0 <= p <= 1:
                raise ValueError(f"probability of fault '{kind}' must be within [0, 1]")
        if sum(value.values()) > 1:
            raise ValueError("fault probabilities must sum to at most 1")
        return value

    @field_validator("clients")
    @classmethod
    def _clients(cls, value: list[SimulatorClient]) -> list[SimulatorClient]:
        ids = [c.client_id for c in value]
        if len(ids) != len(set(ids)):
            raise ValueError("client ids must be unique")
        return value

    def history_range_ms(self, now_ms: int) -> tuple[int, int]:
        """[start, end) of the generated history, in epoch ms; end never after now."""
        end = min(now_ms, to_ms(self.history_end)) if self.history_end is not None else now_ms
        if self.history_start is not None:
            start = to_ms(self.history_start)
        else:
            start = end - int(self.history_days * DAY_MS)
        return start, max(start, end)

    def public_dict(self) -> dict[str, Any]:
        """JSON-able settings without secrets (for the admin route and logs)."""
        data = self.model_dump(mode="json", exclude={"clock", "clients"})
        data["clients"] = [
            {"client_id": c.client_id, "permissions": list(c.permissions)} for c in self.clients
        ]
        return data

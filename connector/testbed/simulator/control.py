"""`SimulatorControl`: the Python API tests, the demo and the benchmark use to steer and inspect a simulator.

`SimulatorControl` works in-process on a `Simulation`; `RemoteSimulatorControl` has the same methods and
talks to a simulator in another process through its `/_sim/` admin routes. Instants may be given as
tz-aware datetimes or ISO-8601 strings.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

import httpx

from connector.testbed.simulator.auth import ALL_PERMISSIONS, ClientCredentials
from connector.testbed.simulator.generator import SpecRequest
from connector.testbed.simulator.isotime import format_ms, from_ms, parse_instant, to_ms
from connector.testbed.simulator.lifecycle import MUTATION_NAMES
from connector.testbed.simulator.model import SCENARIO_BY_NAME, scenarios_for_media
from connector.testbed.simulator.simulation import Simulation

Instant = datetime | str


def instant_ms(value: Instant) -> int:
    """Datetime or ISO string -> epoch ms (ValueError naming the bad value)."""
    if isinstance(value, datetime):
        return to_ms(value)
    return parse_instant(value)


_KEEP: Any = object()


def _fixed_total_hits(value: Any) -> Any:
    """None -> leave as is (`_KEEP`); "off" -> the real count (None); an int >= 0 -> that number."""
    if value is None:
        return _KEEP
    if value == "off":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"fixed_total_hits must be an integer >= 0 or 'off' (got {value!r})")
    return value


class _DerivedViews:
    """What both controls derive alike from their `truth` and `late_indexed` (in process or over HTTP)."""

    def truth(
        self,
        start: Instant,
        end: Instant,
        *,
        records: bool = True,
        ended_only: bool = False,
        attributes: bool = False,
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def late_indexed(self, start: Instant, end: Instant) -> dict[str, datetime]:
        raise NotImplementedError

    def ground_truth(
        self, start: Instant, end: Instant, *, ended_only: bool = False, attributes: bool = False
    ) -> dict[str, dict[str, Any]]:
        """conversationId -> current full record, for conversations that started in [start, end).

        The query's view by default; `attributes=True` is the jobs' view (participant attributes
        included): what the latest message of a settled conversation must equal."""
        rows = self.truth(start, end, records=True, ended_only=ended_only, attributes=attributes)
        return {row["conversationId"]: row["record"] for row in rows}

    def truth_versions(self, start: Instant, end: Instant, *, ended_only: bool = False) -> dict[str, int]:
        """conversationId -> current version (cheap: no rendering)."""
        rows = self.truth(start, end, records=False, ended_only=ended_only)
        return {row["conversationId"]: row["version"] for row in rows}

    def conversation_ids(self, start: Instant, end: Instant, *, ended_only: bool = False) -> list[str]:
        """Ids of conversations that started in [start, end), in start order."""
        return [row["conversationId"] for row in self.truth(start, end, records=False, ended_only=ended_only)]

    def late_indexed_ids(self, start: Instant, end: Instant) -> list[str]:
        """Ids of the late-indexed conversations that started in [start, end), in start order."""
        return list(self.late_indexed(start, end))


class SimulatorControl(_DerivedViews):
    """Steer and inspect one in-process simulator. Thread-safe (every call takes the simulation lock)."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    @property
    def simulation(self) -> Simulation:
        """The underlying state (for advanced tests)."""
        return self._sim

    # --- time -----------------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The simulator's current time."""
        return from_ms(self._sim.now_ms())

    def advance_clock(self, seconds: float) -> datetime:
        """Jump simulated time forward (tokens expire, jobs progress, mutations fall due); returns now."""
        self._sim.advance_clock(seconds)
        return self.now()

    # --- ground truth ---------------------------------------------------------------------------------
    def truth(
        self,
        start: Instant,
        end: Instant,
        *,
        records: bool = True,
        ended_only: bool = False,
        attributes: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows for every conversation with conversationStart in [start, end): conversationId, version,
        conversationStart, conversationEnd (if ended) and, with `records`, the full current record
        (with participant attributes, as job results show it, when `attributes`)."""
        return self._sim.truth(
            instant_ms(start), instant_ms(end), records=records, ended_only=ended_only, attributes=attributes
        )

    def record(self, conversation_id: str) -> dict[str, Any] | None:
        """The current record of one conversation (None if unknown)."""
        with self._sim.lock:
            spec = self._sim.store.get(conversation_id)
            return None if spec is None else self._sim.render(spec)

    def version(self, conversation_id: str) -> int | None:
        """The current version of one conversation (None if unknown)."""
        with self._sim.lock:
            spec = self._sim.store.get(conversation_id)
            return None if spec is None else spec.version

    def conversation_count(self) -> int:
        """How many conversations exist."""
        with self._sim.lock:
            return len(self._sim.store)

    def catalog(self) -> dict[str, Any]:
        """Division, queue, user and wrap-up code ids of the simulated org (for building filters)."""
        return self._sim.catalog.to_dict()

    # --- data changes -------------------------------------------------------------------------------
    def add_conversations(
        self,
        count: int,
        start: Instant,
        *,
        spacing_s: float = 1.0,
        duration_s: float | None = None,
        media_type: str | None = None,
        scenario: str | None = None,
        queue_id: str | None = None,
    ) -> list[str]:
        """Insert conversations starting at `start`, `spacing_s` apart; ids returned in start order.

        Each is brought to its state at "now": ended (and settled per the delays) if start + duration is
        in the past, open otherwise. `duration_s` None draws a realistic duration.
        """
        request = SpecRequest(
            scenario=_scenario_index(media_type, scenario),
            queue=self._queue_index(queue_id),
            duration_ms=None if duration_s is None else int(duration_s * 1000),
        )
        return self._sim.add_conversations(
            count, instant_ms(start), spacing_ms=int(spacing_s * 1000), request=request
        )

    def _queue_index(self, queue_id: str | None) -> int | None:
        if queue_id is None:
            return None
        for i, queue in enumerate(self._sim.catalog.queues):
            if queue.queue_id == queue_id:
                return i
        raise ValueError(f"unknown queue id '{queue_id}' (see catalog())")

    def mutate(self, conversation_id: str, kind: str | None = None) -> int:
        """Apply one mutation now: `end`, `settle`, `evaluation`, `survey`, `reprocess`, `progress`, or the
        natural next one when `kind` is None. Returns the new version (unchanged if it did not apply)."""
        mutation = None
        if kind is not None:
            if kind not in MUTATION_NAMES:
                raise ValueError(f"unknown mutation '{kind}'; use one of {', '.join(MUTATION_NAMES)}")
            mutation = MUTATION_NAMES[kind]
        return self._sim.mutate(conversation_id, mutation)

    def inflate(self, conversation_id: str, segments: int) -> int:
        """Make a conversation very large: `segments` extra segments on its last session (as a long chat
        or e-mail thread has). For tests of records over Kafka's size limits; returns the new version."""
        if segments < 0:
            raise ValueError("segments must be >= 0")
        return self._sim.inflate(conversation_id, segments)

    def tick(self) -> int:
        """Run every scheduled mutation that is due now (and move jobs along); returns how many applied."""
        with self._sim.lock:
            applied = self._sim.run_due()
            self._sim.jobs.advance_all()
            return applied

    def pause_live(self) -> None:
        """Stop live arrivals and scheduled mutations (tick() still runs due mutations)."""
        self._sim.set_live_paused(True)

    def resume_live(self) -> None:
        """Resume live traffic from now (no burst for the paused time)."""
        self._sim.set_live_paused(False)

    def set_live_rate(
        self,
        per_minute: float,
        *,
        duration_s: float | None = None,
        ingest_delay_s: float | None = None,
    ) -> None:
        """New conversations per minute; optionally their fixed duration and the ingest delay."""
        if per_minute < 0:
            raise ValueError("per_minute must be >= 0")
        with self._sim.lock:
            self._sim.live.rate_per_minute = per_minute
            if duration_s is not None:
                self._sim.live.duration_s = duration_s
            if ingest_delay_s is not None:
                self._sim.live.ingest_delay_s = ingest_delay_s

    def set_delays(self, **delays: float | bool) -> None:
        """Change mutation timing for what gets scheduled from now on: acw_delay_s, evaluation_delay_s,
        survey_delay_s, reprocess_delay_s, *_probability, progress_updates."""
        self._sim.set_delays(**delays)

    # --- API behaviour -------------------------------------------------------------------------------
    def set_faults(self, probabilities: dict[str, float], *, route: str = "api") -> None:
        """Per-request fault probabilities for a route scope, e.g. {"503": 0.05, "reset": 0.01}."""
        with self._sim.lock:
            self._sim.faults.set_probabilities(probabilities, route=route)

    def script_faults(self, faults: list[str], *, route: str = "api") -> None:
        """Faults for the next matching requests, in order, e.g. ["503", "ok", "reset", "429:120"]."""
        with self._sim.lock:
            self._sim.faults.script(faults, route=route)

    def clear_faults(self) -> None:
        """Remove every scripted fault and probability."""
        with self._sim.lock:
            self._sim.faults.clear()

    def pending_faults(self) -> dict[str, list[str]]:
        """Scripted faults not yet used, by route scope."""
        with self._sim.lock:
            return self._sim.faults.pending()

    def set_rate_limit(self, limit: int, window_s: float = 60.0) -> None:
        """Requests allowed per token per window; current windows restart."""
        with self._sim.lock:
            self._sim.limiter.configure(limit, window_s)

    def set_latency(self, mean_ms: float, jitter_ms: float = 0.0) -> None:
        """Artificial latency of every /api/v2 response."""
        if mean_ms < 0 or jitter_ms < 0:
            raise ValueError("latency must be >= 0")
        with self._sim.lock:
            self._sim.latency_ms = mean_ms
            self._sim.latency_jitter_ms = jitter_ms

    def set_paging(
        self,
        *,
        total_hits_jitter: float | None = None,
        duplicate_probability: float | None = None,
        fixed_total_hits: int | Literal["off"] | None = None,
    ) -> None:
        """totalHits jitter (fraction), the ghost-duplicate probability of query paging, and a fixed
        (wrong) totalHits every page reports instead of the real count ("off": the real count again).
        None leaves a setting as it is."""
        fixed = _fixed_total_hits(fixed_total_hits)
        with self._sim.lock:
            if fixed is not _KEEP:
                self._sim.fixed_total_hits = fixed
            if total_hits_jitter is not None:
                if not 0 <= total_hits_jitter < 1:
                    raise ValueError("total_hits_jitter must be within [0, 1)")
                self._sim.total_hits_jitter = total_hits_jitter
            if duplicate_probability is not None:
                if not 0 <= duplicate_probability <= 1:
                    raise ValueError("duplicate_probability must be within [0, 1]")
                self._sim.duplicate_probability = duplicate_probability

    def issued_tokens(self) -> list[str]:
        """Every bearer token the simulator has issued (tests check that none leaked into any output)."""
        with self._sim.lock:
            return self._sim.auth.issued()

    def revoke_tokens(self, *, token: str | None = None, client_id: str | None = None) -> int:
        """Revoke one token, a client's tokens, or all tokens; returns how many were revoked."""
        with self._sim.lock:
            return self._sim.auth.revoke(token=token, client_id=client_id)

    def add_client(
        self, client_id: str, client_secret: str, permissions: tuple[str, ...] = ALL_PERMISSIONS
    ) -> None:
        """Register an OAuth client (e.g. one without analytics permissions, to test 403)."""
        with self._sim.lock:
            self._sim.auth.add_client(ClientCredentials(client_id, client_secret, tuple(permissions)))

    def fail_next_jobs(self, count: int = 1, message: str = "Internal error while running the query") -> None:
        """The next `count` submitted jobs end FAILED with `message`."""
        with self._sim.lock:
            self._sim.jobs.fail_next(count, message)

    def fail_job(self, job_id: str, message: str = "Internal error while running the query") -> None:
        """A QUEUED or PENDING job ends FAILED now (it dies mid-way); KeyError if unknown, ValueError if
        it is no longer running."""
        with self._sim.lock:
            self._sim.jobs.fail_now(job_id, message)

    def expire_jobs(self, job_id: str | None = None) -> int:
        """Expire one job (by id) or every job now; returns how many expired. Results then answer 404."""
        with self._sim.lock:
            return self._sim.jobs.expire(job_id)

    def set_job_settings(
        self,
        *,
        max_concurrent: int | None = None,
        max_interval_days: float | None = None,
        failure_probability: float | None = None,
        queued_s: float | None = None,
        pending_s: float | None = None,
        ttl_s: float | None = None,
    ) -> None:
        """Job limits and timings for jobs submitted from now on (ttl: for jobs completing from now on).
        `max_concurrent` 0 and `max_interval_days` 0 mean no cap."""
        changes: dict[str, Any] = {}
        for name, value in (
            ("max_concurrent", max_concurrent),
            ("queued_s", queued_s),
            ("pending_s", pending_s),
        ):
            if value is not None:
                if value < 0:
                    raise ValueError(f"{name} must be >= 0")
                changes[name] = value
        if ttl_s is not None:
            if ttl_s <= 0:
                raise ValueError("ttl_s must be > 0")
            changes["ttl_s"] = ttl_s
        if failure_probability is not None:
            if not 0 <= failure_probability <= 1:
                raise ValueError("failure_probability must be within [0, 1]")
            changes["failure_probability"] = failure_probability
        if max_interval_days is not None and max_interval_days < 0:
            raise ValueError("max_interval_days must be >= 0")
        with self._sim.lock:
            jobs = self._sim.jobs
            jobs.timings = dataclasses.replace(jobs.timings, **changes)
            if max_interval_days is not None:
                self._sim.limits = dataclasses.replace(
                    self._sim.limits, job_max_interval_days=max_interval_days or None
                )

    def set_data_lake(
        self,
        *,
        lag_s: float | None = None,
        step_s: float | None = None,
        pin: Instant | None = None,
        unpin: bool = False,
    ) -> datetime:
        """Data-lake availability: lag and step of floor((now - lag) / step) * step, or a pinned
        dataAvailabilityDate (`pin`) until `unpin`. Returns the dataAvailabilityDate now in force."""
        if lag_s is not None and lag_s < 0:
            raise ValueError("lag_s must be >= 0")
        if step_s is not None and step_s <= 0:
            raise ValueError("step_s must be > 0")
        pinned = None if pin is None else instant_ms(pin)
        with self._sim.lock:
            jobs = self._sim.jobs
            changes: dict[str, Any] = {}
            if lag_s is not None:
                changes["data_lake_lag_s"] = lag_s
            if step_s is not None:
                changes["data_lake_step_s"] = step_s
            jobs.timings = dataclasses.replace(jobs.timings, **changes)
            if unpin:
                jobs.pinned_availability_ms = None
            if pinned is not None:
                jobs.pinned_availability_ms = pinned
            return from_ms(jobs.availability_ms())

    def data_lake(self) -> dict[str, Any]:
        """{dataAvailabilityDate, lag_s, step_s, pinned}: the data lake as jobs see it now."""
        with self._sim.lock:
            jobs = self._sim.jobs
            return {
                "dataAvailabilityDate": format_ms(jobs.availability_ms()),
                "lag_s": jobs.timings.data_lake_lag_s,
                "step_s": jobs.timings.data_lake_step_s,
                "pinned": jobs.pinned_availability_ms is not None,
            }

    def set_indexing(
        self,
        *,
        unstable_tie_order: bool | None = None,
        late_index_probability: float | None = None,
        late_index_delay_s: float | None = None,
        start_granularity_s: float | None = None,
    ) -> None:
        """Indexing hazards of the details query: ties in a random order per request; a share of
        conversations reaching the query index (and the get endpoints) only `late_index_delay_s` after
        their start; live arrivals' starts rounded down to `start_granularity_s` (ties)."""
        if late_index_probability is not None and not 0 <= late_index_probability <= 1:
            raise ValueError("late_index_probability must be within [0, 1]")
        if late_index_delay_s is not None and late_index_delay_s < 0:
            raise ValueError("late_index_delay_s must be >= 0")
        if start_granularity_s is not None and start_granularity_s < 0:
            raise ValueError("start_granularity_s must be >= 0")
        with self._sim.lock:
            sim = self._sim
            if unstable_tie_order is not None:
                sim.unstable_tie_order = bool(unstable_tie_order)
            if late_index_probability is not None:
                sim.late_index_probability = late_index_probability
            if late_index_delay_s is not None:
                sim.late_index_delay_s = late_index_delay_s
            if start_granularity_s is not None:
                sim.live.start_granularity_s = start_granularity_s

    def late_indexed(self, start: Instant, end: Instant) -> dict[str, datetime]:
        """Ground truth of late indexing: conversationId -> when the query index gets it, for the
        late-indexed conversations that started in [start, end) (visible already or not)."""
        rows = self._sim.late_indexed(instant_ms(start), instant_ms(end))
        return {cid: from_ms(at) for cid, at in rows}

    def counters(self) -> dict[str, dict[str, int]]:
        """Responses served: route -> status ('200', '429', 'reset', ...) -> count."""
        return self._sim.counters_snapshot()

    def reset_counters(self) -> None:
        """Zero the counters."""
        self._sim.reset_counters()


def _scenario_index(media_type: str | None, scenario: str | None) -> int | None:
    if scenario is not None:
        if scenario not in SCENARIO_BY_NAME:
            raise ValueError(f"unknown scenario '{scenario}'; use one of {', '.join(SCENARIO_BY_NAME)}")
        return SCENARIO_BY_NAME[scenario]
    if media_type is not None:
        return scenarios_for_media(media_type)[0]
    return None


class RemoteSimulatorControl(_DerivedViews):
    """The SimulatorControl API over HTTP, for a simulator running in another process."""

    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params={k: _param(v) for k, v in params.items() if v is not None})
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        body = {k: v for k, v in (payload or {}).items() if v is not None}
        response = self._http.post(path, json=body)
        if response.status_code == 400:
            raise ValueError(response.json().get("message", response.text))
        if response.status_code == 404:
            raise KeyError(response.json().get("message", response.text))
        response.raise_for_status()
        return response.json()

    def now(self) -> datetime:
        """The simulator's current time."""
        return from_ms(parse_instant(self._get("/_sim/clock")["now"]))

    def advance_clock(self, seconds: float) -> datetime:
        """Jump simulated time forward."""
        return from_ms(parse_instant(self._post("/_sim/clock", {"advance_s": seconds})["now"]))

    def truth(
        self,
        start: Instant,
        end: Instant,
        *,
        records: bool = True,
        ended_only: bool = False,
        attributes: bool = False,
    ) -> list[dict[str, Any]]:
        """See SimulatorControl.truth."""
        rows: list[dict[str, Any]] = self._get(
            "/_sim/truth",
            start=start,
            end=end,
            records=records,
            ended_only=ended_only,
            attributes=attributes,
        )["conversations"]
        return rows

    def _conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """GET /_sim/conversations/{id}: its record and version, or None if the simulator has no such id."""
        response = self._http.get(f"/_sim/conversations/{conversation_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def record(self, conversation_id: str) -> dict[str, Any] | None:
        """See SimulatorControl.record."""
        found = self._conversation(conversation_id)
        return None if found is None else dict(found["record"])

    def version(self, conversation_id: str) -> int | None:
        """See SimulatorControl.version."""
        found = self._conversation(conversation_id)
        return None if found is None else int(found["version"])

    def conversation_count(self) -> int:
        """How many conversations exist."""
        return int(self._get("/_sim/health")["conversations"])

    def catalog(self) -> dict[str, Any]:
        """See SimulatorControl.catalog."""
        catalog: dict[str, Any] = self._get("/_sim/catalog")
        return catalog

    def add_conversations(self, count: int, start: Instant, **options: Any) -> list[str]:
        """See SimulatorControl.add_conversations (same keyword options)."""
        payload = {"count": count, "start": _param(start), **options}
        ids: list[str] = self._post("/_sim/conversations", payload)["conversationIds"]
        return ids

    def mutate(self, conversation_id: str, kind: str | None = None) -> int:
        """See SimulatorControl.mutate."""
        return int(self._post("/_sim/mutate", {"conversation_id": conversation_id, "kind": kind})["version"])

    def tick(self) -> int:
        """See SimulatorControl.tick."""
        return int(self._post("/_sim/tick")["applied"])

    def pause_live(self) -> None:
        """See SimulatorControl.pause_live."""
        self._post("/_sim/live", {"paused": True})

    def resume_live(self) -> None:
        """See SimulatorControl.resume_live."""
        self._post("/_sim/live", {"paused": False})

    def set_live_rate(
        self, per_minute: float, *, duration_s: float | None = None, ingest_delay_s: float | None = None
    ) -> None:
        """See SimulatorControl.set_live_rate."""
        payload = {"rate_per_minute": per_minute, "duration_s": duration_s, "ingest_delay_s": ingest_delay_s}
        self._post("/_sim/live", payload)

    def set_delays(self, **delays: float | bool) -> None:
        """See SimulatorControl.set_delays."""
        self._post("/_sim/live", {"delays": delays})

    def set_faults(self, probabilities: dict[str, float], *, route: str = "api") -> None:
        """See SimulatorControl.set_faults."""
        self._post("/_sim/faults", {"probabilities": probabilities, "route": route})

    def script_faults(self, faults: list[str], *, route: str = "api") -> None:
        """See SimulatorControl.script_faults."""
        self._post("/_sim/faults", {"script": faults, "route": route})

    def clear_faults(self) -> None:
        """See SimulatorControl.clear_faults."""
        self._post("/_sim/faults", {"clear": True})

    def pending_faults(self) -> dict[str, list[str]]:
        """See SimulatorControl.pending_faults."""
        pending: dict[str, list[str]] = self._get("/_sim/faults")["pending"]
        return pending

    def set_rate_limit(self, limit: int, window_s: float = 60.0) -> None:
        """See SimulatorControl.set_rate_limit."""
        self._post("/_sim/ratelimit", {"limit": limit, "window_s": window_s})

    def set_latency(self, mean_ms: float, jitter_ms: float = 0.0) -> None:
        """See SimulatorControl.set_latency."""
        self._post("/_sim/latency", {"mean_ms": mean_ms, "jitter_ms": jitter_ms})

    def set_paging(
        self,
        *,
        total_hits_jitter: float | None = None,
        duplicate_probability: float | None = None,
        fixed_total_hits: int | Literal["off"] | None = None,
    ) -> None:
        """See SimulatorControl.set_paging."""
        payload = {
            "total_hits_jitter": total_hits_jitter,
            "duplicate_probability": duplicate_probability,
            "fixed_total_hits": fixed_total_hits,
        }
        self._post("/_sim/paging", payload)

    def issued_tokens(self) -> list[str]:
        """See SimulatorControl.issued_tokens."""
        return [str(token) for token in self._get("/_sim/tokens")["tokens"]]

    def revoke_tokens(self, *, token: str | None = None, client_id: str | None = None) -> int:
        """See SimulatorControl.revoke_tokens."""
        return int(self._post("/_sim/revoke", {"token": token, "client_id": client_id})["revoked"])

    def add_client(
        self, client_id: str, client_secret: str, permissions: tuple[str, ...] = ALL_PERMISSIONS
    ) -> None:
        """See SimulatorControl.add_client."""
        payload = {"client_id": client_id, "client_secret": client_secret, "permissions": list(permissions)}
        self._post("/_sim/clients", payload)

    def fail_next_jobs(self, count: int = 1, message: str = "Internal error while running the query") -> None:
        """See SimulatorControl.fail_next_jobs."""
        self._post("/_sim/jobs/fail", {"count": count, "message": message})

    def fail_job(self, job_id: str, message: str = "Internal error while running the query") -> None:
        """See SimulatorControl.fail_job."""
        self._post("/_sim/jobs/fail", {"job_id": job_id, "message": message})

    def expire_jobs(self, job_id: str | None = None) -> int:
        """See SimulatorControl.expire_jobs."""
        return int(self._post("/_sim/jobs/expire", {"job_id": job_id})["expired"])

    def set_job_settings(self, **settings: float | None) -> None:
        """See SimulatorControl.set_job_settings (same keyword options)."""
        self._post("/_sim/jobs/settings", settings)

    def set_data_lake(
        self,
        *,
        lag_s: float | None = None,
        step_s: float | None = None,
        pin: Instant | None = None,
        unpin: bool = False,
    ) -> datetime:
        """See SimulatorControl.set_data_lake."""
        payload = {"lag_s": lag_s, "step_s": step_s, "pin": _param(pin), "unpin": unpin or None}
        return from_ms(parse_instant(self._post("/_sim/datalake", payload)["dataAvailabilityDate"]))

    def data_lake(self) -> dict[str, Any]:
        """See SimulatorControl.data_lake."""
        state: dict[str, Any] = self._get("/_sim/datalake")
        return state

    def set_indexing(self, **settings: float | bool | None) -> None:
        """See SimulatorControl.set_indexing (same keyword options)."""
        self._post("/_sim/index", settings)

    def late_indexed(self, start: Instant, end: Instant) -> dict[str, datetime]:
        """See SimulatorControl.late_indexed."""
        rows = self._get("/_sim/late", start=start, end=end)["conversations"]
        return {r["conversationId"]: from_ms(parse_instant(r["indexedAt"])) for r in rows}

    def counters(self) -> dict[str, dict[str, int]]:
        """See SimulatorControl.counters."""
        counters: dict[str, dict[str, int]] = self._get("/_sim/counters")["counters"]
        return counters

    def reset_counters(self) -> None:
        """See SimulatorControl.reset_counters."""
        self._post("/_sim/counters/reset")


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value

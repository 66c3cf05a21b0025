"""Fault injection: scripted sequences and per-kind probabilities, scoped to routes.

Fault kinds (strings, as used by `script_faults` and the admin route):

| kind            | effect                                                                         |
|-----------------|--------------------------------------------------------------------------------|
| `ok`            | no fault (consumes one scripted slot)                                          |
| `500` `502` `503` `504` | that status with an ErrorBody                                          |
| `408`           | request timeout ErrorBody                                                      |
| `429[:N]`       | 429, `Retry-After: N` (default 60) and the VERIFIED rate-limit message         |
| `slow[:S]`      | wait S seconds (default 5) then answer normally                                |
| `reset`         | drop the TCP connection without any response (RST)                             |
| `truncated`     | 200 with the first half of the real JSON body                                  |
| `html502`       | 502 with an HTML page (`text/html`), as a load balancer would send             |
| `revoke`        | revoke the caller's token, answer 401                                          |

Scopes: a route name (`token`, `query`, `conversation`, `conversations`, `jobs_create`, `job_status`,
`job_results`, `job_delete`, `availability`), `api` (every /api/v2 route) or `any` (also the token route).
A request takes the first scripted fault of its own route, else of `api`, else of `any`; without a scripted
fault, the probabilities of those scopes are tried. Faults never change data. Not thread-safe: the
Simulation lock guards it.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

ROUTES = (
    "token",
    "query",
    "conversation",
    "conversations",
    "jobs_create",
    "job_status",
    "job_results",
    "job_delete",
    "availability",
)
SCOPES = (*ROUTES, "api", "any")
KINDS = ("ok", "500", "502", "503", "504", "408", "429", "slow", "reset", "truncated", "html502", "revoke")
_DEFAULT_SECONDS = {"429": 60.0, "slow": 5.0}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to inject; `seconds` is the Retry-After (429) or the delay (slow)."""

    kind: str
    seconds: float | None = None

    @property
    def label(self) -> str:
        """The script spelling of this fault."""
        return self.kind if self.seconds is None else f"{self.kind}:{self.seconds:g}"


def parse_fault(text: str) -> Fault:
    """`"503"`, `"429:120"`, `"slow:2.5"`, ... -> Fault; ValueError naming the bad text."""
    kind, _, arg = str(text).strip().partition(":")
    if kind not in KINDS:
        raise ValueError(
            f"unknown fault '{text}'; use one of {', '.join(KINDS)} (429 and slow take ':seconds')"
        )
    if arg:
        if kind not in _DEFAULT_SECONDS:
            raise ValueError(f"fault '{kind}' takes no argument (got '{text}')")
        try:
            seconds = float(arg)
        except ValueError:
            raise ValueError(f"fault '{text}': '{arg}' is not a number of seconds") from None
        if seconds < 0:
            raise ValueError(f"fault '{text}': seconds must be >= 0")
        return Fault(kind, seconds)
    return Fault(kind, _DEFAULT_SECONDS.get(kind))


def _check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown fault route '{scope}'; use one of {', '.join(SCOPES)}")
    return scope


class FaultInjector:
    """Holds scripted fault queues and probabilities per scope; hands out the fault for each request."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._scripts: dict[str, deque[Fault]] = {}
        self._probabilities: dict[str, list[tuple[Fault, float]]] = {}

    def script(self, faults: list[str], *, route: str = "api") -> None:
        """Append faults to the scope's queue; each is used by exactly one later matching request."""
        parsed = [parse_fault(f) for f in faults]
        self._scripts.setdefault(_check_scope(route), deque()).extend(parsed)

    def set_probabilities(self, probabilities: dict[str, float], *, route: str = "api") -> None:
        """Replace the scope's probabilities (`{"503": 0.05, "slow:2": 0.01}`); they must sum to <= 1."""
        items = []
        for text, p in probabilities.items():
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"fault probability for '{text}' must be within [0, 1] (got {p})")
            items.append((parse_fault(text), float(p)))
        if sum(p for _, p in items) > 1.0 + 1e-9:
            raise ValueError("fault probabilities of one route must sum to at most 1")
        self._probabilities[_check_scope(route)] = items

    def clear(self) -> None:
        """Forget every script and probability."""
        self._scripts.clear()
        self._probabilities.clear()

    def pending(self) -> dict[str, list[str]]:
        """Scripted faults not used yet, by scope."""
        return {scope: [f.label for f in q] for scope, q in self._scripts.items() if q}

    def next_fault(self, route: str) -> Fault | None:
        """The fault for one request to `route` (None = serve normally)."""
        scopes = (route, "any") if route == "token" else (route, "api", "any")
        for scope in scopes:
            queue = self._scripts.get(scope)
            if queue:
                fault = queue.popleft()
                return None if fault.kind == "ok" else fault
        for scope in scopes:
            items = self._probabilities.get(scope)
            if not items:
                continue
            roll = self._rng.random()
            for fault, p in items:
                if roll < p:
                    return None if fault.kind == "ok" else fault
                roll -= p
        return None

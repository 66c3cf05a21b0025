"""Details-query semantics: body validation, matching, ordering and offset paging (genesys-api.md §1, §7).

- `interval` is required and must be `start/end` ISO-8601 with end > start (400 otherwise); longer than
  `max_interval_days` (31) -> 400 with the VERIFIED (observed) message; optional 7-day cap without filters.
- `paging` absent -> page 1 of 25 (VERIFIED); when present both fields are required; pageSize above the
  configured max (default 100) -> 400; pageNumber*pageSize above the cap (100,000) -> 400
  "Pagination may not exceed 100000 results" (VERIFIED observed).
- Matching (query): started on a UTC day the interval touches AND lifetime [conversationStart,
  conversationEnd or +inf) overlaps [start, end) (VERIFIED + INFERRED overlap rule). Jobs: lifetime overlap
  only, unless `startOfDayIntervalMatching`.
- Paging is plain offset paging over the matching set *as it is at each request*, so live inserts shift
  pages and produce duplicates/skips as on the real service. Some conversations are present twice in the
  raw hit list (ghost duplicates, configurable probability); each page is de-duplicated, so pages come out
  short and `totalHits` (raw count, +/- jitter) is approximate - nothing is ever lost. `fixed_total_hits`
  makes every page report one number instead (a wrong estimate: 250000 for 300, or 0 with full pages).
- Past the last page the response omits `conversations` and keeps `totalHits`.
"""

from __future__ import annotations

import random
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.testbed.simulator.errors import INVALID_DATE, INVALID_VALUE, bad_request
from connector.testbed.simulator.filters import Filter, FilterError, all_match, parse_filters
from connector.testbed.simulator.isotime import DAY_MS, format_ms, parse_instant, parse_interval
from connector.testbed.simulator.model import Catalog, ConversationSpec, Stage
from connector.testbed.simulator.render import last_segment_end_ms
from connector.testbed.simulator.store import ConversationStore

ORDERS = ("asc", "desc", "unordered")
ORDER_BYS = ("conversationStart", "conversationEnd", "segmentStart", "segmentEnd")
_FILTER_FIELDS = {
    "conversationFilters": "conversation",
    "segmentFilters": "segment",
    "evaluationFilters": "evaluation",
    "surveyFilters": "survey",
    "resolutionFilters": "resolution",
}
PAGINATION_MESSAGE = "Pagination may not exceed {cap} results"
INTERVAL_MESSAGE = "You must specify a search interval as part of your query that does not exceed {days} days"


@dataclass(frozen=True)
class QueryLimits:
    """The validation knobs of the details query and job APIs."""

    default_page_size: int = 25
    max_page_size: int = 100
    pagination_cap: int = 100_000
    max_interval_days: float = 31
    seven_day_cap_without_filters: bool = False
    job_max_interval_days: float | None = None
    strict_dimensions: bool = True


@dataclass(frozen=True)
class ConversationQuery:
    """What the query and job bodies have in common."""

    start_ms: int
    end_ms: int
    order: str = "asc"
    order_by: str = "conversationStart"
    filters: tuple[tuple[str, tuple[Filter, ...]], ...] = ()  # (family, filters) for non-empty families
    start_day_matching: bool = True

    @property
    def interval(self) -> str:
        """The normalised interval text."""
        return f"{format_ms(self.start_ms)}/{format_ms(self.end_ms)}"

    def match_key(self) -> tuple[Any, ...]:
        """Hashable identity of the matching set (paging excluded)."""
        return (self.start_ms, self.end_ms, self.order, self.order_by, self.filters, self.start_day_matching)


@dataclass(frozen=True)
class DetailsQuery(ConversationQuery):
    """A validated POST .../details/query body."""

    page_size: int = 25
    page_number: int = 1


@dataclass(frozen=True)
class JobQuery(ConversationQuery):
    """A validated POST .../details/jobs body (AsyncConversationQuery)."""

    limit: int | None = None
    body: dict[str, Any] = field(default_factory=dict, compare=False)


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return body


def _parse_common(body: dict[str, Any], limits: QueryLimits, max_days: float | None) -> dict[str, Any]:
    if "interval" not in body or body["interval"] in (None, ""):
        raise bad_request(
            "interval is required, e.g. '2026-05-01T00:00:00.000Z/2026-05-01T01:00:00.000Z'", field="interval"
        )
    try:
        start_ms, end_ms = parse_interval(body["interval"])
    except ValueError as exc:
        raise bad_request(f"Invalid interval: {exc}", code=INVALID_DATE, field="interval") from None
    order = body.get("order", "asc")
    if order not in ORDERS:
        raise bad_request(
            f"order must be one of {', '.join(ORDERS)} (got {order!r})", code=INVALID_VALUE, field="order"
        )
    order_by = body.get("orderBy", "conversationStart")
    if order_by not in ORDER_BYS:
        raise bad_request(
            f"orderBy must be one of {', '.join(ORDER_BYS)} (got {order_by!r})",
            code=INVALID_VALUE,
            field="orderBy",
        )
    filters: list[tuple[str, tuple[Filter, ...]]] = []
    for key, family in _FILTER_FIELDS.items():
        try:
            parsed = parse_filters(body.get(key), key, family, strict=limits.strict_dimensions)
        except FilterError as exc:
            raise bad_request(str(exc), code=INVALID_VALUE, field=key) from None
        if parsed:
            filters.append((family, parsed))
    span_days = (end_ms - start_ms) / DAY_MS
    if max_days is not None and span_days > max_days:
        raise bad_request(INTERVAL_MESSAGE.format(days=f"{max_days:g}"), field="interval")
    if limits.seven_day_cap_without_filters and not filters and span_days > 7:
        raise bad_request(
            INTERVAL_MESSAGE.format(days=7) + " when no filters are specified", field="interval"
        )
    return {
        "start_ms": start_ms,
        "end_ms": end_ms,
        "order": order,
        "order_by": order_by,
        "filters": tuple(filters),
    }


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer (got {value!r})", code=INVALID_VALUE, field=name)
    if value < 1:
        raise bad_request(f"{name} must be >= 1 (got {value})", code=INVALID_VALUE, field=name)
    return value


def parse_details_query(body: Any, limits: QueryLimits) -> DetailsQuery:
    """Validate a details query body; raises ApiProblem(400) naming the problem."""
    body = _require_object(body)
    common = _parse_common(body, limits, limits.max_interval_days)
    paging = body.get("paging")
    page_size, page_number = limits.default_page_size, 1
    if paging is not None:
        if not isinstance(paging, dict) or "pageSize" not in paging or "pageNumber" not in paging:
            raise bad_request("paging needs both pageSize and pageNumber", field="paging")
        page_size = _positive_int(paging["pageSize"], "paging.pageSize")
        page_number = _positive_int(paging["pageNumber"], "paging.pageNumber")
    if page_size > limits.max_page_size:
        raise bad_request(
            f"paging.pageSize must not exceed {limits.max_page_size} (got {page_size})",
            code=INVALID_VALUE,
            field="paging.pageSize",
        )
    if page_size * page_number > limits.pagination_cap:
        raise bad_request(PAGINATION_MESSAGE.format(cap=limits.pagination_cap), field="paging.pageNumber")
    return DetailsQuery(**common, page_size=page_size, page_number=page_number)


def parse_job_query(body: Any, limits: QueryLimits) -> JobQuery:
    """Validate an AsyncConversationQuery body; raises ApiProblem(400)."""
    body = _require_object(body)
    common = _parse_common(body, limits, limits.job_max_interval_days)
    sod = body.get("startOfDayIntervalMatching", False)
    if not isinstance(sod, bool):
        raise bad_request("startOfDayIntervalMatching must be a boolean", field="startOfDayIntervalMatching")
    limit = body.get("limit")
    if limit is not None:
        limit = _positive_int(limit, "limit")
    common["start_day_matching"] = sod
    return JobQuery(**common, limit=limit, body=dict(body))


class ConversationFacts:
    """Answers filter lookups for one conversation: cheap ones from the spec, the rest from its record."""

    __slots__ = ("_catalog", "_doc", "_render", "spec")

    def __init__(
        self, spec: ConversationSpec, catalog: Catalog, render: Callable[[ConversationSpec], dict[str, Any]]
    ):
        self.spec = spec
        self._catalog = catalog
        self._render = render
        self._doc: dict[str, Any] | None = None

    def __call__(self, family: str, kind: str, name: str) -> Sequence[Any]:
        fast = self._fast(family, kind, name)
        if fast is not None:
            return fast
        if self._doc is None:
            self._doc = self._render(self.spec)
        return record_values(self._doc, family, kind, name)

    def _fast(self, family: str, kind: str, name: str) -> Sequence[Any] | None:
        spec, sc = self.spec, self.spec.scenario_info
        if kind != "dimension":
            return None
        if family == "conversation":
            if name == "conversationId":
                return (spec.cid,)
            if name == "conversationEnd":
                return () if spec.stage == Stage.OPEN else (format_ms(spec.end_ms),)
            if name == "conversationStart":
                return (format_ms(spec.start_ms),)
            if name == "divisionId":
                return (self._catalog.division_of(spec.queue),)
            if name == "originatingDirection":
                return (sc.direction,)
        elif family == "segment":
            if name == "mediaType":
                return sc.media_types
            if name == "purpose":
                return sc.purposes
            if name == "queueId":
                return (self._catalog.queues[spec.queue].queue_id,) if sc.has_queue else ()
            if name == "direction":
                return sc.directions
        return None


_SEGMENT_LISTS = {
    "requestedRoutingSkillId": "requestedRoutingSkillIds",
    "wrapUpTag": "wrapUpTags",
    "callbackNumber": "callbackNumbers",
    "sipResponseCode": "sipResponseCodes",
    "q850ResponseCode": "q850ResponseCodes",
    "requestedRouting": "requestedRoutings",
}
_LATE_FAMILIES = {"evaluation": "evaluations", "survey": "surveys", "resolution": "resolutions"}


def _flatten(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        out.extend(value)
    elif value is not None:
        out.append(value)


def record_values(doc: dict[str, Any], family: str, kind: str, name: str) -> list[Any]:
    """Every value a rendered record has for (family, kind, name): the generic filter lookup."""
    out: list[Any] = []
    if family in _LATE_FAMILIES:
        for item in doc.get(_LATE_FAMILIES[family], []):
            _flatten(item.get(name), out)
        return out
    if family == "conversation" and kind == "dimension":
        _flatten(doc.get(name, doc.get(name + "s")), out)
        return out
    for part in doc.get("participants", []):
        for sess in part.get("sessions", []):
            if kind == "metric" and family == "conversation":
                out.extend(m["value"] for m in sess.get("metrics", []) if m["name"] == name)
                continue
            for seg in sess.get("segments", []):
                _segment_value(part, sess, seg, kind, name, out)
    return out


def _segment_value(
    part: dict[str, Any], sess: dict[str, Any], seg: dict[str, Any], kind: str, name: str, out: list[Any]
) -> None:
    if kind == "metric":
        if name == "tSegmentDuration" and "segmentEnd" in seg:
            out.append(parse_instant(seg["segmentEnd"]) - parse_instant(seg["segmentStart"]))
        return
    if kind == "property":
        out.extend(p["value"] for p in seg.get("properties", []) if p.get("property") == name)
        return
    plural = _SEGMENT_LISTS.get(name)
    flow = sess.get("flow") or {}
    for source in (seg, sess, part, flow):
        if name in source:
            _flatten(source[name], out)
            return
        if plural and plural in source:
            _flatten(source[plural], out)
            return


def _order_key(order_by: str) -> Callable[[ConversationSpec], int | None]:
    if order_by in ("conversationStart", "segmentStart"):
        return lambda s: s.start_ms
    if order_by == "conversationEnd":
        return lambda s: None if s.stage == Stage.OPEN else s.end_ms
    return last_segment_end_ms


def sort_matches(specs: list[ConversationSpec], order: str, order_by: str) -> list[ConversationSpec]:
    """Order by the requested field; ties by id; records missing the field (still open) always last."""
    if order == "unordered":
        return specs
    key = _order_key(order_by)
    present = [(k, s.cid, s) for s in specs if (k := key(s)) is not None]
    missing = [s for s in specs if key(s) is None]
    present.sort(key=lambda t: (t[0], t[1]), reverse=order == "desc")
    return [t[2] for t in present] + missing


@dataclass(frozen=True)
class Page:
    """One page of a details query: the specs to render (de-duplicated) and the reported totalHits."""

    specs: list[ConversationSpec]
    total_hits: int
    past_end: bool


class QueryEngine:
    """Runs matching + filtering + ordering over the store, caching the matched list per store generation."""

    def __init__(
        self,
        store: ConversationStore,
        catalog: Catalog,
        render: Callable[[ConversationSpec], dict[str, Any]],
        *,
        cache_size: int = 32,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self._render = render
        self._cache: OrderedDict[tuple[Any, ...], list[ConversationSpec]] = OrderedDict()
        self._cache_size = cache_size

    def matching(self, query: ConversationQuery) -> list[ConversationSpec]:
        """Every conversation the query matches, in the requested order (a fresh list for each generation)."""
        key = (self.store.generation, *query.match_key())
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        found = self.store.overlapping(
            query.start_ms, query.end_ms, start_day_matching=query.start_day_matching
        )
        if query.filters:
            found = [s for s in found if self._passes(s, query.filters)]
        result = sort_matches(found, query.order, query.order_by)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _passes(self, spec: ConversationSpec, filters: tuple[tuple[str, tuple[Filter, ...]], ...]) -> bool:
        facts = ConversationFacts(spec, self.catalog, self._render)
        return all(all_match(flts, family, facts) for family, flts in filters)


def is_ghost_duplicate(spec: ConversationSpec, probability: float) -> bool:
    """Whether this conversation (at this version) sits twice in the raw hit list."""
    if probability <= 0.0:
        return False
    return (zlib.crc32(spec.cid.encode()) ^ (spec.version * 2654435761)) % 1_000_003 < probability * 1_000_003


def page_of(
    matched: list[ConversationSpec],
    page_size: int,
    page_number: int,
    *,
    duplicate_probability: float,
    total_hits_jitter: float,
    rng: random.Random,
    fixed_total_hits: int | None = None,
) -> Page:
    """Slice one page out of the raw hit list (with ghost duplicates), then de-duplicate it.

    `fixed_total_hits` replaces the reported totalHits on every page (a wrong estimate); data is unchanged.
    """
    if duplicate_probability > 0.0:
        raw: list[ConversationSpec] = []
        for spec in matched:
            raw.append(spec)
            if is_ghost_duplicate(spec, duplicate_probability):
                raw.append(spec)
    else:
        raw = matched
    total = len(raw)
    if total and total_hits_jitter > 0.0:
        total = max(0, round(total * (1.0 + rng.uniform(-total_hits_jitter, total_hits_jitter))))
    if fixed_total_hits is not None:
        total = fixed_total_hits
    offset = (page_number - 1) * page_size
    if offset >= len(raw):
        return Page([], total, True)
    seen: set[str] = set()
    page: list[ConversationSpec] = []
    for spec in raw[offset : offset + page_size]:
        if spec.cid not in seen:
            seen.add(spec.cid)
            page.append(spec)
    return Page(page, total, False)


def shuffle_ties(specs: list[ConversationSpec], order_by: str, rng: random.Random) -> list[ConversationSpec]:
    """A copy of an ordered match list with every run of equal sort values in a random order.

    What a search index served by several replicas can do (genesys-api.md §1.4, INFERRED): ties come back
    in a different order on each request, so offset paging may skip or repeat members of a tie group that
    straddles a page boundary. Records missing the field (still open) form one tie group at the end.
    """
    key = _order_key(order_by)
    out: list[ConversationSpec] = []
    i, n = 0, len(specs)
    while i < n:
        value = key(specs[i])
        j = i + 1
        while j < n and key(specs[j]) == value:
            j += 1
        group = specs[i:j]
        if len(group) > 1:
            rng.shuffle(group)
        out.extend(group)
        i = j
    return out


_LATE_INDEX_SALT = b"late-index"


def is_late_indexed(spec: ConversationSpec, probability: float) -> bool:
    """Whether this conversation reaches the query index late (decided by its id: stable, seed-free)."""
    if probability <= 0.0:
        return False
    return zlib.crc32(spec.cid.encode() + _LATE_INDEX_SALT) % 1_000_003 < probability * 1_000_003

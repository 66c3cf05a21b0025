"""Query filters: parse and evaluate the filter/clause/predicate shape of genesys-api.md §1.1.

```
filter    = {"type": "and"|"or", "clauses": [clause...]?, "predicates": [predicate...]?}
clause    = {"type": "and"|"or", "predicates": [predicate...]}
predicate = {"type"?: "dimension"|"property"|"metric", "dimension"|"metric"|("propertyType"+"property"),
             "operator"?: "matches"|"exists"|"notExists", "value"?: str, "range"?: {gt, gte, lt, lte}}
```

Entries of one filter list (e.g. `conversationFilters`) must all match. Evaluation is against a lookup that
returns every value a conversation has for (family, kind, name). Simplification (INFERRED, not verified): a
segment predicate matches when *any* segment/session/participant of the conversation has the value; the
simulator does not require all predicates of a segment filter to hold on the same segment.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from connector.testbed.simulator.isotime import parse_instant

CONVERSATION_DIMENSIONS = frozenset(
    (
        "accessAttribute",
        "conversationEnd",
        "conversationId",
        "conversationInitiator",
        "conversationStart",
        "customerParticipation",
        "divisionId",
        "externalTag",
        "mediaStatsMinConversationMos",
        "originatingDirection",
        "originatingSocialMediaPublic",
    )
)
SEGMENT_DIMENSIONS = frozenset(
    (
        "addressFrom",
        "addressOther",
        "addressSelf",
        "addressTo",
        "agentScore",
        "ani",
        "audioMuted",
        "callbackNumber",
        "callbackScheduledTime",
        "callbackUserName",
        "cobrowseRole",
        "cobrowseRoomId",
        "conference",
        "destinationConversationId",
        "destinationSessionId",
        "direction",
        "disconnectType",
        "dispositionAnalyzer",
        "dispositionName",
        "dnis",
        "edgeId",
        "endingLanguage",
        "entryReason",
        "entryType",
        "errorCode",
        "exitReason",
        "externalContactId",
        "externalOrganizationId",
        "flaggedReason",
        "flowId",
        "flowName",
        "flowOutcome",
        "flowOutcomeEndTimestamp",
        "flowOutcomeId",
        "flowOutcomeStartTimestamp",
        "flowOutcomeValue",
        "flowType",
        "flowVersion",
        "groupId",
        "issuedCallback",
        "journeyActionId",
        "journeyActionMapId",
        "journeyActionMapVersion",
        "journeyCustomerId",
        "journeyCustomerIdType",
        "journeyCustomerSessionId",
        "journeyCustomerSessionIdType",
        "mediaBridgeId",
        "mediaType",
        "messageType",
        "monitoredParticipantId",
        "outboundCampaignId",
        "outboundContactId",
        "outboundContactListId",
        "participantId",
        "participantName",
        "peerId",
        "protocolCallId",
        "provider",
        "purpose",
        "q850ResponseCode",
        "queueId",
        "remote",
        "recording",
        "remoteNameDisplayable",
        "requestedLanguageId",
        "requestedRoutingSkillId",
        "requestedRoutingUserId",
        "roomId",
        "scoredAgentId",
        "screenShareAddressSelf",
        "screenShareRoomId",
        "scriptId",
        "segmentEnd",
        "segmentType",
        "sessionDnis",
        "sessionId",
        "sharingScreen",
        "sipResponseCode",
        "skipEnabled",
        "sourceConversationId",
        "sourceSessionId",
        "startingLanguage",
        "subject",
        "timeoutSeconds",
        "transferTargetAddress",
        "transferTargetName",
        "transferType",
        "userId",
        "videoAddressSelf",
        "videoMuted",
        "videoRoomId",
        "wrapUpCode",
        "wrapUpNote",
        "wrapUpTag",
        "teamId",
        "usedRouting",
        "requestedRouting",
        "selectedAgentId",
    )
)
EVALUATION_DIMENSIONS = frozenset(
    (
        "calibrationId",
        "contextId",
        "deleted",
        "evaluationId",
        "evaluationStatus",
        "evaluatorId",
        "eventTime",
        "formId",
        "formName",
        "queueId",
        "released",
        "rescored",
        "userId",
    )
)
SURVEY_DIMENSIONS = frozenset(
    (
        "eventTime",
        "queueId",
        "surveyCompletedDate",
        "surveyFormContextId",
        "surveyFormId",
        "surveyFormName",
        "surveyId",
        "surveyPromoterScore",
        "surveyStatus",
        "surveyType",
        "userId",
    )
)
RESOLUTION_DIMENSIONS = frozenset(("queueId", "userId", "eventTime"))

_DIMENSIONS = {
    "conversation": CONVERSATION_DIMENSIONS,
    "segment": SEGMENT_DIMENSIONS,
    "evaluation": EVALUATION_DIMENSIONS,
    "survey": SURVEY_DIMENSIONS,
    "resolution": RESOLUTION_DIMENSIONS,
}
_METRICS: dict[str, frozenset[str] | None] = {
    "conversation": None,  # ~75 conversation metrics: any n*/t*/o* name is accepted
    "segment": frozenset(("tSegmentDuration",)),
    "evaluation": frozenset(("oTotalScore", "oTotalCriticalScore")),
    "survey": frozenset(("oSurveyTotalScore",)),
    "resolution": frozenset(("nNextContactAvoided",)),
}
_METRIC_NAME = re.compile(r"^[nto][A-Z]\w*$")
DATE_DIMENSIONS = frozenset(
    (
        "conversationStart",
        "conversationEnd",
        "segmentEnd",
        "eventTime",
        "surveyCompletedDate",
        "callbackScheduledTime",
    )
)
_OPERATORS = ("matches", "exists", "notExists")
_PROPERTY_TYPES = ("bool", "integer", "real", "date", "string", "uuid")


class FilterError(ValueError):
    """A filter that cannot be understood; the message names the JSON path and the problem."""


@dataclass(frozen=True, slots=True)
class Predicate:
    """One test on a dimension, metric or segment property."""

    kind: str  # dimension | metric | property
    name: str
    operator: str
    value: str | None
    bounds: tuple[float | None, float | None, float | None, float | None] | None  # gt, gte, lt, lte


@dataclass(frozen=True, slots=True)
class Clause:
    """`and`/`or` over predicates."""

    type: str
    predicates: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Filter:
    """`and`/`or` over clauses and predicates."""

    type: str
    clauses: tuple[Clause, ...]
    predicates: tuple[Predicate, ...]


# (family, kind, name) -> every value the conversation has there (empty = does not exist).
FactLookup = Callable[[str, str, str], Sequence[Any]]


def parse_filters(raw: Any, field: str, family: str, *, strict: bool = True) -> tuple[Filter, ...]:
    """Validate one `*Filters` list of a query body; raise FilterError naming the offending path."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise FilterError(f"{field} must be a list of filters")
    return tuple(_parse_filter(item, f"{field}[{i}]", family, strict) for i, item in enumerate(raw))


def _parse_type(raw: dict[str, Any], path: str) -> str:
    kind = raw.get("type")
    if kind not in ("and", "or"):
        raise FilterError(f"{path}.type must be 'and' or 'or' (got {kind!r})")
    return str(kind)


def _parse_filter(raw: Any, path: str, family: str, strict: bool) -> Filter:
    if not isinstance(raw, dict):
        raise FilterError(f"{path} must be an object")
    kind = _parse_type(raw, path)
    clauses_raw = raw.get("clauses") or []
    preds_raw = raw.get("predicates") or []
    if not isinstance(clauses_raw, list) or not isinstance(preds_raw, list):
        raise FilterError(f"{path}.clauses and {path}.predicates must be lists")
    if not clauses_raw and not preds_raw:
        raise FilterError(f"{path} needs at least one clause or predicate")
    clauses = []
    for i, c in enumerate(clauses_raw):
        cpath = f"{path}.clauses[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("predicates"), list) or not c["predicates"]:
            raise FilterError(f"{cpath} must be an object with a non-empty 'predicates' list")
        preds = tuple(
            _parse_predicate(p, f"{cpath}.predicates[{j}]", family, strict)
            for j, p in enumerate(c["predicates"])
        )
        clauses.append(Clause(_parse_type(c, cpath), preds))
    preds = tuple(
        _parse_predicate(p, f"{path}.predicates[{j}]", family, strict) for j, p in enumerate(preds_raw)
    )
    return Filter(kind, tuple(clauses), preds)


def _parse_predicate(raw: Any, path: str, family: str, strict: bool) -> Predicate:
    if not isinstance(raw, dict):
        raise FilterError(f"{path} must be an object")
    kind, name = _predicate_target(raw, path, family, strict)
    operator = raw.get("operator", "matches")
    if operator not in _OPERATORS:
        raise FilterError(f"{path}.operator must be one of {', '.join(_OPERATORS)} (got {operator!r})")
    value = raw.get("value")
    bounds = _parse_range(raw.get("range"), f"{path}.range", name) if raw.get("range") is not None else None
    if operator == "matches":
        if value is None and bounds is None:
            raise FilterError(f"{path} with operator 'matches' needs a 'value' or a 'range'")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise FilterError(f"{path}.value must be a string")
    return Predicate(kind, name, operator, None if value is None else _as_text(value), bounds)


def _predicate_target(raw: dict[str, Any], path: str, family: str, strict: bool) -> tuple[str, str]:
    declared = raw.get("type")
    if declared is not None and declared not in ("dimension", "property", "metric"):
        raise FilterError(f"{path}.type must be 'dimension', 'property' or 'metric' (got {declared!r})")
    if raw.get("dimension") is not None:
        name = raw["dimension"]
        if strict and name not in _DIMENSIONS[family]:
            raise FilterError(f"{path}.dimension '{name}' is not a valid {family} dimension")
        return "dimension", str(name)
    if raw.get("metric") is not None:
        name = raw["metric"]
        allowed = _METRICS[family]
        valid = _METRIC_NAME.match(str(name)) if allowed is None else name in allowed
        if strict and not valid:
            raise FilterError(f"{path}.metric '{name}' is not a valid {family} metric")
        return "metric", str(name)
    if raw.get("property") is not None and family == "segment":
        ptype = raw.get("propertyType")
        if ptype not in _PROPERTY_TYPES:
            raise FilterError(f"{path}.propertyType must be one of {', '.join(_PROPERTY_TYPES)}")
        return "property", str(raw["property"])
    raise FilterError(f"{path} must name a 'dimension' or a 'metric'")


def _parse_range(
    raw: Any, path: str, name: str
) -> tuple[float | None, float | None, float | None, float | None]:
    if not isinstance(raw, dict) or not any(raw.get(k) is not None for k in ("gt", "gte", "lt", "lte")):
        raise FilterError(f"{path} must be an object with at least one of gt, gte, lt, lte")
    out: list[float | None] = []
    for key in ("gt", "gte", "lt", "lte"):
        v = raw.get(key)
        if v is None:
            out.append(None)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append(float(v))
        elif isinstance(v, str) and name in DATE_DIMENSIONS:
            try:
                out.append(float(parse_instant(v)))
            except ValueError as exc:
                raise FilterError(f"{path}.{key}: {exc}") from None
        else:
            raise FilterError(f"{path}.{key} must be a number")
    return out[0], out[1], out[2], out[3]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _in_range(
    value: Any, bounds: tuple[float | None, float | None, float | None, float | None], name: str
) -> bool:
    if isinstance(value, str):
        if name not in DATE_DIMENSIONS:
            return False
        try:
            num = float(parse_instant(value))
        except ValueError:
            return False
    elif isinstance(value, int | float) and not isinstance(value, bool):
        num = float(value)
    else:
        return False
    gt, gte, lt, lte = bounds
    return (
        (gt is None or num > gt)
        and (gte is None or num >= gte)
        and (lt is None or num < lt)
        and (lte is None or num <= lte)
    )


def predicate_matches(pred: Predicate, family: str, lookup: FactLookup) -> bool:
    """Evaluate one predicate against a conversation's facts."""
    values = lookup(family, pred.kind, pred.name)
    if pred.operator == "exists":
        return bool(values)
    if pred.operator == "notExists":
        return not values
    if pred.bounds is not None:
        return any(_in_range(v, pred.bounds, pred.name) for v in values)
    return any(_as_text(v) == pred.value for v in values)


def _clause_matches(clause: Clause, family: str, lookup: FactLookup) -> bool:
    results = (predicate_matches(p, family, lookup) for p in clause.predicates)
    return all(results) if clause.type == "and" else any(results)


def filter_matches(flt: Filter, family: str, lookup: FactLookup) -> bool:
    """Evaluate one filter: its predicates and clauses combined by its type (lazily, short-circuiting)."""
    results = itertools.chain(
        (predicate_matches(p, family, lookup) for p in flt.predicates),
        (_clause_matches(c, family, lookup) for c in flt.clauses),
    )
    return all(results) if flt.type == "and" else any(results)


def all_match(filters: Sequence[Filter], family: str, lookup: FactLookup) -> bool:
    """True when every filter of one family matches."""
    return all(filter_matches(f, family, lookup) for f in filters)

"""Rendering is a pure function of the spec: a seeded set of records renders to the same bytes as before.

The digest below was taken from the renderer before it was split into timeline / shapes / render, over
every scenario at every stage, with and without evaluations, surveys, corrections, attributes and extra
segments. A change to a record's content, key order or random draws changes the digest: if that change is
intended (a new field, a fix), update the digest in the same commit and say why.
"""

from __future__ import annotations

import hashlib
import random

import orjson

from connector.testbed.simulator.generator import ConversationFactory, SpecRequest
from connector.testbed.simulator.lifecycle import MutationDelays
from connector.testbed.simulator.model import (
    F_EVALUATION,
    F_SURVEY,
    REPROCESS_SHIFT,
    SCENARIOS,
    Catalog,
    Stage,
)
from connector.testbed.simulator.render import render_record

SEED = 20260501
START_MS = 1_777_593_600_000  # 2026-05-01T00:00:00Z
GOLDEN_SHA256 = "398852a4c7673e77ad806cdc896c606681b8ccb0cf5948718b807e46bb1d7a2f"


def _rendered_history() -> bytes:
    catalog = Catalog.build(SEED)
    factory = ConversationFactory(catalog, MutationDelays())
    rng = random.Random(SEED)
    out = bytearray()
    for draw in range(6):
        for scenario in range(len(SCENARIOS)):
            spec = factory.draw(rng, START_MS + draw * 3_600_000, SpecRequest(scenario=scenario))
            for stage in Stage:
                spec.stage = stage
                spec.cut_ms = (spec.start_ms + spec.end_ms) // 2
                spec.flags = (F_EVALUATION | F_SURVEY | (draw % 3) << REPROCESS_SHIFT) if draw % 2 else 0
                record = render_record(spec, catalog, attributes=bool(draw % 2), extra_segments=draw % 3)
                out += orjson.dumps(record) + b"\n"
    return bytes(out)


def test_seeded_records_render_byte_identical() -> None:
    assert hashlib.sha256(_rendered_history()).hexdigest() == GOLDEN_SHA256


def test_rendering_is_deterministic() -> None:
    assert _rendered_history() == _rendered_history()

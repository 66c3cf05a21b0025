"""The error tree: the docstring's drawing is the code's hierarchy, and every class in it is raised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import connector
from connector import errors
from connector.errors import (
    ApiError,
    BatchNotDelivered,
    ConnectorError,
    ExitCode,
    FatalError,
    RetriableError,
    RetriesExhaustedError,
    UpstreamUnavailableError,
)

PACKAGE = Path(connector.__file__).parent
_TREE_LINE = re.compile(r"^(?P<indent>[│ ]*)(?:├── |└── )(?P<name>\w+)")


def drawn_tree() -> dict[str, str]:
    """{class: parent} as drawn in `connector.errors`' docstring."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = [(-1, "ConnectorError")]
    for line in (errors.__doc__ or "").splitlines():
        match = _TREE_LINE.match(line)
        if match is None:
            continue
        depth = len(match["indent"]) // 4
        while stack[-1][0] >= depth:
            stack.pop()
        parents[match["name"]] = stack[-1][1]
        stack.append((depth, match["name"]))
    return parents


def tree_classes() -> list[type[ConnectorError]]:
    """Every ConnectorError subclass defined in connector.errors (the ApiError mixin is not a branch)."""
    found: list[type[ConnectorError]] = []
    todo: list[type[ConnectorError]] = [ConnectorError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == errors.__name__ and sub not in found and sub is not ApiError:
                found.append(sub)
                todo.append(sub)
    return found


def test_the_docstring_draws_exactly_the_class_hierarchy() -> None:
    drawn = drawn_tree()
    classes = {cls.__name__: cls for cls in tree_classes()}
    assert set(drawn) == set(classes)
    for name, parent in drawn.items():
        branch = [base.__name__ for base in classes[name].__bases__ if base is not ApiError]
        assert branch == [parent], name


def test_every_class_of_the_tree_is_raised_by_the_code() -> None:
    """A class nobody raises is deleted, not kept 'just in case'."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py") if p.name != "errors.py")
    for cls in tree_classes():
        if cls in (FatalError, RetriableError, errors.JobError):
            continue  # branches: what the caller does, raised through their leaves
        assert re.search(rf"raise {cls.__name__}\(|= {cls.__name__}\(", sources), cls.__name__


def test_every_leaf_is_either_fatal_or_retried_config_aside() -> None:
    """Each leaf is on one branch: stop, try again later, or (a job's own outcome) the job runner's."""
    branches = (FatalError, RetriableError, errors.JobError)
    for cls in tree_classes():
        if cls is errors.ConfigError or cls in branches:
            continue
        assert sum(issubclass(cls, branch) for branch in branches) == 1, cls.__name__


@pytest.mark.parametrize(
    "exc",
    [
        RetriesExhaustedError("details_query: giving up", last=UpstreamUnavailableError("x", reason="5xx")),
        BatchNotDelivered(None, 3, ["Message timed out"]),
    ],
)
def test_giving_up_on_a_request_or_a_batch_is_retried_later_not_fatal(exc: ConnectorError) -> None:
    """The loop retries the pass later (a window is never skipped); nothing here stops the worker."""
    assert isinstance(exc, RetriableError)
    assert not isinstance(exc, FatalError)


def test_pagination_cap_is_a_signal_outside_the_tree() -> None:
    from connector.genesys.pagination import PaginationCapReached

    assert not issubclass(PaginationCapReached, ConnectorError)


def test_one_set_of_exit_codes() -> None:
    assert (ExitCode.OK, ExitCode.FATAL, ExitCode.CONFIG) == (0, 1, 2)
    for path in PACKAGE.rglob("*.py"):
        if "testbed" in path.parts:
            continue
        assert not re.search(r"^EXIT_\w+ = ", path.read_text(encoding="utf-8"), re.M), path

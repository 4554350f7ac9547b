"""Property-based fuzzing of the whole HTTP API from its own /openapi.json (schemathesis).

Schemathesis generates requests for every operation the schema describes, both valid ones and
ones that break the schema (wrong types, missing fields, out-of-range values, odd content
types), and sends them in-process to an app built over the fake engine. No request may get a
5xx, and every answer must match what /openapi.json says of it (status, content type, body).

The suite runs a bounded, derandomised pass; `make fuzz-inference` runs a longer random one
(KAITO_FUZZ_EXAMPLES, KAITO_FUZZ_SEED) and prints `RESULT cases=N server_errors=E`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from inference_server.app import build_app
from inference_server.engine.errors import AdapterNotFoundError
from inference_server.settings import ServerSettings

from .fake_engine import FakeEngine

SUITE_EXAMPLES = 40  # per operation and generation mode: ~400 requests, ~15 s on one core


class _FuzzEngine(FakeEngine):
    """The fake engine, answering adapter calls as the real engines do when none is loaded."""

    async def load_adapter(self, name: str, path: str) -> None:
        raise AdapterNotFoundError(f"cannot load adapter {name!r}: not a LoRA adapter")

    async def unload_adapter(self, name: str) -> None:
        raise AdapterNotFoundError(f"The lora adapter '{name}' cannot be found.")


@dataclass
class FuzzReport:
    cases: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"RESULT cases={self.cases} server_errors={len(self.server_errors)}"


def _describe(case: Case, status: int, text: str) -> str:
    sent = f"{case.method} {case.formatted_path} media={case.media_type} body={case.body!r:.300}"
    return f"{sent} -> {status} {text[:300]}"


def _steer(drawn: tuple[Case, bool]) -> Case:
    """Half the generated bodies that name a model name the served one, so that they get past
    the model lookup (a random name is a 404) and reach the prompt and sampling checks."""
    case, served = drawn
    if served and isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = "fuzz-model"
    return case


_CHECKS: list[Callable[..., Any]] = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(max_examples: int, seed: int | None) -> FuzzReport:
    """Send `max_examples` generated requests per operation and generation mode."""
    app = build_app(
        ServerSettings(served_model_name="fuzz-model", default_max_tokens=8),
        _FuzzEngine(max_model_len=256),
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                derandomize=seed is None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=False,
            )
            @given(
                case=st.tuples(operation.as_strategy(generation_mode=mode), st.booleans()).map(
                    _steer
                )
            )
            def probe(case: Case) -> None:
                report.cases += 1
                try:
                    response = case.call()
                except Exception as exc:  # in-process, an unhandled error reaches the caller
                    report.server_errors.append(_describe(case, 500, f"raised {exc!r}"))
                    return
                status = response.status_code
                report.by_status[status] = report.by_status.get(status, 0) + 1
                if status >= 500:
                    report.server_errors.append(_describe(case, status, response.text))
                    return
                try:
                    case.validate_response(response, checks=_CHECKS)
                except FailureGroup as exc:
                    report.nonconforming.append(
                        f"{_describe(case, status, response.text)}: {str(exc)[:400]}"
                    )

            if seed is not None:
                probe = hypothesis_seed(seed)(probe)
            try:
                probe()
            except Unsatisfiable:  # nothing to break in an operation without inputs
                continue
    return report


def test_fuzzed_requests_never_get_a_server_error() -> None:
    examples = int(os.environ.get("KAITO_FUZZ_EXAMPLES", SUITE_EXAMPLES))
    raw_seed = os.environ.get("KAITO_FUZZ_SEED")
    report = fuzz(examples, int(raw_seed) if raw_seed else None)
    print(f"\nstatuses={dict(sorted(report.by_status.items()))}")
    print(f"answers not matching /openapi.json: {len(report.nonconforming)}")
    print(report.line())
    for problem in report.server_errors[:10] + report.nonconforming[:10]:
        print("  " + problem)
    assert report.cases > 0
    # Generated requests must reach the routes, not only the request validation.
    assert report.by_status.get(200, 0) > 0
    assert not report.server_errors, "\n".join(report.server_errors[:10])
    assert not report.nonconforming, "\n".join(report.nonconforming[:10])

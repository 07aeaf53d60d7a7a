"""Property-based fuzzing of every operation from the OpenAPI description (schemathesis,
in-process over ASGI): no 500s, only documented status codes, responses match their
schemas. Bounded examples per operation to stay fast."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from tiny_data import copy_space

import schemathesis  # noqa: E402  (the dev extra)
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


@pytest.fixture(scope="module")
def fuzz_schema(tiny_space_dir, tmp_path_factory):
    from talkrec.service.app import create_app
    app = create_app(copy_space(tiny_space_dir, tmp_path_factory.mktemp("fuzz") / "space"))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_api_never_500s_and_matches_its_schema(fuzz_schema):
    # schemathesis' pytest plugin does not run under pytest 9; drive hypothesis directly
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    ops = [r.ok() for r in fuzz_schema.get_all_operations()]
    assert len(ops) >= 14, [o.label for o in ops]
    failures = []
    for op in ops:
        @given(case=op.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def run(case):
            case.call_and_validate(checks=checks)
        try:
            run()
        except Exception as e:  # collect all operations' failures, then report
            failures.append(f"{op.label}: {e}")
    assert not failures, "\n\n".join(failures)

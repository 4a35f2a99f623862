"""Schemathesis against /api/v1/openapi.json: every operation, positive and negative
requests, in-process over WSGI. No server error, and every response as the spec says."""
from __future__ import annotations

import json
import os
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.fuzz.hooks import TillKey, before_call, flatmap_case

SPEC = json.loads((Path(__file__).parents[2] / "portal/api/openapi.json").read_text())
CONFIG = schemathesis.Config.from_dict({"base-url": "http://localhost/api/v1",
                                        "generation": {"mode": "all",
                                                       "deterministic": True,
                                                       "database": "none"}})
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG)
schema.hook(flatmap_case)
# Schemathesis takes this hook only globally; it touches only the cases marked above.
schemathesis.hook(before_call)
# Each test seeds a new key: no caching.
schema.auth(refresh_interval=None)(TillKey)

# 20 per operation keeps CI quick and the same on every run (derandomize); raise it for a
# deeper search: TESSERA_FUZZ_EXAMPLES=500 pytest tests/fuzz
EXAMPLES = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "20"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, negative_data_rejection,
          missing_required_header, unsupported_method, allow_header_conformance, ignored_auth]


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, fuzz_app, world):
    # The app is a fixture, so it is bound here; the checks send probes of their own to it.
    case.operation.app = case.operation.schema.app = fuzz_app
    response = case.call()
    case.validate_response(response, checks=CHECKS)

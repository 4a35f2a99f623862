"""Schemathesis against /api/v1/openapi.json: every operation, positive and negative
requests, in-process over WSGI. No server error, and every response as the spec says."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from portal.db import db
from tests.conftest import _empty_tables
from tests.factories import CardPlanFactory
from tests.fuzz.hooks import TillKey, before_call, flatmap_case
from tests.fuzz.world import seed

SPEC = json.loads((Path(__file__).parents[2] / "portal/api/openapi.json").read_text())
CONFIG = schemathesis.Config.from_dict({"base-url": "http://localhost/api/v1",
                                        "generation": {"mode": "all",
                                                       "deterministic": True,
                                                       "database": "none"}})
# A copy: Schemathesis adds the links it infers to the document it is given.
schema = schemathesis.openapi.from_dict(copy.deepcopy(SPEC), config=CONFIG)
schema.hook(flatmap_case)
# Schemathesis takes this hook only globally; it touches only the cases marked above.
schemathesis.hook(before_call)
# Each test seeds a new key: no caching.
schema.auth(refresh_interval=None)(TillKey)

# 20 per operation keeps CI quick and the same on every run (derandomize); raise it for a
# deeper search: TESSERA_FUZZ_EXAMPLES=500 pytest tests/fuzz
EXAMPLES = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "20"))
SCENARIOS = int(os.environ.get("TESSERA_FUZZ_SCENARIOS", "20"))
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


# Negative data is the per-operation test's: in scenarios, a negative case that the hook
# made valid is still judged as negative.
STATEFUL_CHECKS = [*(c for c in CHECKS if c is not negative_data_rejection), use_after_free,
                   ensure_resource_availability]


def test_workflows_that_follow_the_links_answer_as_documented(fuzz_app):
    """Sequences along openapi.json's links: an order then its refund, a redemption then
    its rollback, a member looked up then their card charged, a charge then its refund."""
    schema.app = fuzz_app
    Workflow = schema.as_state_machine()
    followed = []

    class Tills(Workflow):
        def setup(self):
            # Each scenario starts from the same seeded merchant: Hypothesis replays a
            # scenario to shrink it, and must see the same answers as the first time.
            db.session.remove()  # forget the last scenario's rows: their ids come again
            _empty_tables()
            seed(CardPlanFactory())

        def step(self, input):
            output = super().step(input)
            if input.transition is not None:  # reached along a link, not generated afresh
                followed.append((input.transition.id, output.response.status_code))
            return output

        def get_call_kwargs(self, case):
            return {"app": fuzz_app}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs)

    Tills.run(settings=settings(max_examples=SCENARIOS, stateful_step_count=5, derandomize=True,
                                database=None, deadline=None,
                                suppress_health_check=list(HealthCheck)))
    # The seeded data lets scenarios create things, and openapi.json's own links (not only
    # those Schemathesis infers) must have carried some of them to a successful next call.
    ours = {name for path in SPEC["paths"].values() for op in path.values()
            for answer in op["responses"].values() for name in answer.get("links", {})}
    assert any(transition.split("] ")[1].split(" -> ")[0] in ours and 200 <= status < 300
               for transition, status in followed), followed


def test_the_fuzzed_description_is_the_one_clients_get(client):
    assert client.get("/api/v1/openapi.json").json == SPEC

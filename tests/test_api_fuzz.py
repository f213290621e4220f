"""Schemathesis drives the API from its own OpenAPI document: no 500s, answers as documented."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from nurture.models import Role

EXAMPLES_PER_OPERATION = 60
"""Generated requests per operation: enough to find a 500, small enough for a fast suite."""


def test_every_operation_conforms_to_its_document(app, make_token):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {make_token(Role.ADMIN)}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /leads", "GET /leads", "GET /leads/{lead_id}", "POST /rejections"}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case):
            # Intake is stricter than JSON Schema can say (real ISO countries, IANA zones,
            # deliverable-looking domains), so a schema-valid body may still be a 422; every
            # other check holds: no 5xx, documented status codes, media types and bodies.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        conforms()

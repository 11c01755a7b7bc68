"""Schemathesis against the ASGI app in-process: every operation, all checks, a fixed seed and
a bounded number of examples per operation (about a minute on two cores). It must find no
server error, no response outside the schema and no undocumented status code.

No worker runs here: the few jobs the fuzzer could create stay queued. The longer run for
release checks (stateful phase, more examples) is tests/service/fuzz_long.py.
"""
import secrets

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from api.main import app

SEED = 20261129
EXAMPLES_PER_OPERATION = 25


def fuzz_config(seed: int, max_examples: int) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": seed,
        "generation": {"max-examples": max_examples, "deterministic": True},
        "checks": {
            # Data the schema allows can still be refused for what only the server knows: a
            # dataset id that does not exist (404/422), a file whose content is not a dataset
            # (422), parameters the chosen method does not have (422), a finished job (409).
            "positive_data_acceptance": {"expected-statuses": [200, 201, 202, 204, 404, 409, 422]},
        },
    })


# The fuzzer calls as an admin, so every route is reachable (without a key each would answer only
# 401). Its token is made here and its key stored once the run's tables exist (the fixture below).
FUZZER_TOKEN = "dck_" + secrets.token_urlsafe(32)


class AdminKey:
    """The fuzzer's credentials, registered as auth so the header is not itself fuzzed."""

    def get(self, case, context) -> str:
        return FUZZER_TOKEN

    def set(self, case, data: str, context) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def fuzz_schema(seed: int, max_examples: int):
    """The app's schema, to be called in-process as the fuzzer's admin key. It is taken from the
    app object, not fetched through it: fetching would start the app's lifespan during collection,
    before this run's tables exist, and its failing background loop would format tracebacks
    (ast.parse) in another thread while pytest parses test files, which CPython 3.11 does not
    survive ("AST constructor recursion depth mismatch")."""
    schema = schemathesis.openapi.from_dict(app.openapi(), config=fuzz_config(seed, max_examples))
    schema.app = app  # cases are called through ASGI
    schema.auth()(AdminKey)
    return schema


@pytest.fixture(scope="module", autouse=True)
def fuzzer_key(database):
    from persistence.accounts import create_key
    from persistence.db import session_scope

    with session_scope() as session:
        create_key(session, "fuzzer", admin=True, max_active_jobs=10**6, max_storage_mb=1 << 30,
                   requests_per_minute=10**9, token=FUZZER_TOKEN)


schema = fuzz_schema(SEED, EXAMPLES_PER_OPERATION)


@schema.parametrize()
def test_every_operation_keeps_its_contract(case):
    case.call_and_validate()

"""Schemathesis against the ASGI app in-process: every operation, all checks, a fixed seed and
a bounded number of examples per operation (about a minute on two cores). It must find no
server error, no response outside the schema and no undocumented status code.

No worker runs here: the few jobs the fuzzer could create stay queued. The longer run for
release checks (stateful phase, more examples) is tests/fuzz_long.py.
"""
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


schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config(SEED, EXAMPLES_PER_OPERATION))


@schema.parametrize()
def test_every_operation_keeps_its_contract(case, admin_token):
    # As an admin: every route is reachable (without a key each would answer only 401).
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"})

"""The attack suite for release checks (not collected by a plain `pytest`: its name does not
start with test_). Same checks as tests/service/test_api_fuzz.py, with many more examples per
operation and the stateful phase, whose sequences follow the links between operations
(upload -> job -> cancel -> results -> delete). On the test PostgreSQL and Redis, no worker:

    # about 15-20 min on 2 cores:
    .venv/bin/python -m pytest tests/service/fuzz_long.py -p no:cacheprovider
    FUZZ_EXAMPLES=1000 FUZZ_SEED=7 .venv/bin/python -m pytest tests/service/fuzz_long.py

It must report no failure: no server error, no response outside the schema, no undocumented
status code, no use-after-free (a deleted dataset still answering).
"""
import os

from tests.service.test_api_fuzz import fuzz_schema, fuzzer_key  # noqa: F401 (an autouse fixture)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("FUZZ_SEED", "1"))

schema = fuzz_schema(SEED, EXAMPLES)


@schema.parametrize()
def test_every_operation_keeps_its_contract(case):
    case.call_and_validate()


APIWorkflow = schema.as_state_machine()


def test_stateful_sequences_keep_the_contract(database):
    APIWorkflow.run()

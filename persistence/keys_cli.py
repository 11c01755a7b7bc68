"""`deepclust keys create|list|revoke`: API keys from the server's shell, on the same
settings (DEEPCLUST_DATABASE_URL) and database as the API. Each prints JSON."""

from __future__ import annotations

import argparse
import json
import sys


def add_keys_parser(sub) -> None:
    keys = sub.add_parser("keys", help="API keys of the service (create, list, revoke)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key; prints its token once")
    create.add_argument("name")
    create.add_argument(
        "--admin", action="store_true", help="may manage keys and see every dataset and job"
    )
    create.add_argument("--max-active-jobs", type=_positive, help="queued + running jobs at once")
    create.add_argument("--max-storage-mb", type=_positive, help="datasets + job results")
    create.add_argument("--max-upload-mb", type=_positive, help="one upload")
    create.add_argument("--requests-per-minute", type=_positive)
    actions.add_parser("list", help="every key, never a token")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")


def run_keys(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from persistence import accounts
    from persistence.db import session_scope

    try:
        with session_scope() as session:
            if args.keys_command == "create":
                key, token = accounts.create_key(
                    session,
                    args.name,
                    admin=args.admin,
                    max_active_jobs=args.max_active_jobs,
                    max_storage_mb=args.max_storage_mb,
                    max_upload_mb=args.max_upload_mb,
                    requests_per_minute=args.requests_per_minute,
                )
                print(json.dumps({**accounts.key_as_dict(key), "token": token}))
            elif args.keys_command == "list":
                for key in accounts.list_keys(session):
                    print(json.dumps(accounts.key_as_dict(key)))
            elif not accounts.revoke_key(session, args.id):
                raise LookupError(f"no live key {args.id}")
            else:
                print(json.dumps({"id": args.id, "revoked": True}))
    except LookupError as exc:
        print(f"deepclust: error: {exc.args[0]}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:  # no database, or not migrated
        print(
            f"deepclust: error: database unreachable or not migrated (alembic upgrade head): "
            f"{exc.orig}",
            file=sys.stderr,
        )
        return 2
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value

"""Checks of the deployment files (Dockerfile, .dockerignore, docker-compose*.yml) that need
no Docker engine: their structure, that they agree with each other and with the code, and
that the modules and commands they name exist and import."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"postgres", "redis", "migrate", "api", "worker"}
APP_SERVICES = ("migrate", "api", "worker")
API_CMD = ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]

# Top-level and service-level keys of the Compose Specification (a subset of the service
# keys, enough to catch a misspelt or misplaced key; jsonschema is not a dependency here).
TOP_LEVEL_KEYS = {
    "version",
    "name",
    "include",
    "services",
    "networks",
    "volumes",
    "configs",
    "secrets",
    "models",
}
SERVICE_KEYS = {
    "build",
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "stop_grace_period",
    "stop_signal",
    "shm_size",
    "user",
    "working_dir",
    "networks",
    "labels",
    "logging",
    "ulimits",
    "init",
    "profiles",
    "container_name",
    "hostname",
    "extra_hosts",
    "tmpfs",
    "mem_limit",
    "cpus",
    "gpus",
    "runtime",
    "ipc",
    "develop",
}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# --------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR."""
    pattern = re.compile(
        r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
    )

    def replace(match: re.Match) -> str:
        escaped, name, op, default, bare = match.groups()
        if escaped:
            return "$"
        if bare:
            return env.get(bare, "")
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return pattern.sub(replace, value)


def env_of(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):  # the KEY=VALUE list form
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate(str(value), {}) for key, value in environment.items()}


def argv(command) -> list[str]:
    return list(map(str, command)) if isinstance(command, list) else shlex.split(command)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    result = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return result


def copy_sources() -> list[str]:
    sources = []
    for instruction, arguments in dockerfile_instructions():
        if instruction in {"COPY", "ADD"}:
            words = [w for w in shlex.split(arguments) if not w.startswith("--")]
            assert len(words) >= 2, f"{instruction} {arguments}: needs a source and a destination"
            sources.extend(words[:-1])
    return sources


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env.pop("PYTHONPATH", None)  # the image has none: the project is pip-installed / cwd
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def app_env(services) -> dict[str, str]:
    return env_of(services["api"])


# --------------------------------------------------------------------------- compose file


def test_compose_has_the_five_services_and_only_known_keys(compose, services):
    assert set(services) == SERVICES
    unknown_top = {k for k in compose if not k.startswith("x-")} - TOP_LEVEL_KEYS
    assert not unknown_top, f"unknown top-level keys: {unknown_top}"
    for name, service in services.items():
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"{name}: unknown keys {unknown}"
        assert "image" in service or "build" in service, f"{name}: neither image nor build"


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, (
                    f"{name}: volume {source!r} is not declared at the top level"
                )


def test_postgres_is_pinned_below_18_with_its_data_path_and_healthcheck(services):
    postgres = services["postgres"]
    image, _, tag = postgres["image"].partition(":")
    assert image == "postgres" and tag.split(".")[0].split("-")[0] == "16", postgres["image"]
    targets = [v.split(":")[1] for v in postgres["volumes"]]
    assert "/var/lib/postgresql/data" in targets
    assert "pg_isready" in " ".join(argv(postgres["healthcheck"]["test"]))
    env = env_of(postgres)
    assert env["POSTGRES_USER"] and env["POSTGRES_DB"] and env["POSTGRES_PASSWORD"]


def test_redis_never_evicts_and_has_a_healthcheck(services):
    redis = services["redis"]
    assert redis["image"].split(":")[0] == "redis"
    command = argv(redis["command"])
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert argv(redis["healthcheck"]["test"])[-2:] == ["redis-cli", "ping"]


@pytest.mark.parametrize(
    "service, expected",
    [
        ("migrate", {"postgres": "service_healthy"}),
        ("api", {"migrate": "service_completed_successfully", "redis": "service_healthy"}),
        ("worker", {"migrate": "service_completed_successfully", "redis": "service_healthy"}),
    ],
)
def test_depends_on_conditions(services, service, expected):
    depends_on = services[service]["depends_on"]
    assert isinstance(depends_on, dict), (
        f"{service}: depends_on needs the long form to carry conditions"
    )
    for dependency, spec in depends_on.items():
        assert dependency in services, f"{service} depends on the unknown service {dependency}"
        assert spec.get("condition") in DEPENDS_CONDITIONS, f"{service} -> {dependency}: {spec}"
    assert {k: v["condition"] for k, v in depends_on.items() if k in expected} == expected
    assert set(expected) <= set(depends_on)


def test_healthchecks_exist_for_what_others_wait_on(services):
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency}'s health"
                )
            if spec.get("condition") == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", (
                    f"{dependency} must run once to 'complete'"
                )


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_are_built_here_and_share_the_environment(services, app_env, service):
    spec = services[service]
    build = spec["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context / "Dockerfile").is_file()
    env = env_of(spec)
    assert {"DEEPCLUST_DATABASE_URL", "DEEPCLUST_BROKER_URL"} <= set(env)
    assert env == app_env, f"{service}'s environment differs from the api's"


def test_app_environment_points_at_the_compose_services(services, app_env):
    postgres_env = env_of(services["postgres"])
    database = app_env["DEEPCLUST_DATABASE_URL"]
    expected = (
        f"postgresql://{postgres_env['POSTGRES_USER']}:{postgres_env['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres_env['POSTGRES_DB']}"
    )
    assert database == expected
    assert re.fullmatch(r"redis://redis:6379/\d+", app_env["DEEPCLUST_BROKER_URL"])
    assert app_env["DEEPCLUST_BLOB_STORE"] == "database"
    # The password default is shared, so overriding POSTGRES_PASSWORD changes both places.
    raw_db = services["api"]["environment"]["DEEPCLUST_DATABASE_URL"]
    assert interpolate(raw_db, {"POSTGRES_PASSWORD": "s3cret"}).startswith(
        "postgresql://deepclust:s3cret@"
    )
    assert (
        interpolate(
            services["postgres"]["environment"]["POSTGRES_PASSWORD"],
            {"POSTGRES_PASSWORD": "s3cret"},
        )
        == "s3cret"
    )


def test_settings_read_the_compose_environment(app_env, monkeypatch):
    from persistence.settings import Settings

    for key in list(os.environ):
        if key.startswith("DEEPCLUST_") or key in {"DATABASE_URL", "BROKER_URL"}:
            monkeypatch.delenv(key)
    for key, value in app_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert not settings.embedded
    assert settings.db_url.startswith("postgresql+psycopg://")
    assert settings.broker == app_env["DEEPCLUST_BROKER_URL"]
    assert settings.blobs == "database"


def test_worker_command_and_shutdown(services, app_env):
    worker = services["worker"]
    command = argv(worker["command"])
    assert (
        command[:2] == ["celery", "-A"]
        and command[2] == "worker.celery_app"
        and command[3] == "worker"
    )
    assert command[command.index("-P") + 1] == "prefork"
    assert command[command.index("-c") + 1] == "1"
    assert "--max-tasks-per-child=1" in command
    queue = app_env.get("DEEPCLUST_QUEUE", "deepclust")
    assert command[command.index("-Q") + 1] == queue, (
        "the worker must consume the queue the API sends to"
    )
    assert worker["stop_grace_period"] == "2m"
    assert worker["shm_size"] == "2gb"


def test_migrate_runs_alembic(services):
    assert argv(services["migrate"]["command"]) == ["alembic", "upgrade", "head"]


def test_api_port_and_healthcheck(services):
    api = services["api"]
    assert argv(api.get("command", API_CMD)) == API_CMD
    assert any(str(port).split(":")[-1] == "8000" for port in api["ports"])
    test = argv(api["healthcheck"]["test"])
    assert test[0] == "CMD" and test[1] == "python" and test[2] == "-c", "slim images have no curl"
    code = test[3]
    compile(code, "<healthcheck>", "exec")
    # readiness (database and broker), not liveness: a 503 from /ready makes urlopen raise
    assert "urllib" in code and re.search(r"http://(127\.0\.0\.1|localhost):8000/ready\b", code)


def test_commands_come_from_pinned_requirements(services):
    requirements = {
        re.split(r"[=<>\[ ]", line.strip(), maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name in APP_SERVICES:
        executable = argv(services[name].get("command", API_CMD))[0]
        assert executable in requirements, (
            f"{name} runs {executable!r}, which requirements.txt does not install"
        )


# --------------------------------------------------------------------------- GPU override


def test_gpu_override_reserves_one_nvidia_gpu_for_the_worker(services):
    from persistence.settings import Settings

    override = load_yaml(COMPOSE_GPU)
    assert set(override["services"]) == {"worker", "api"}
    # the API cannot see the worker's GPU, so it is told the memory budget by a real setting
    budget = override["services"]["api"]["environment"]["DEEPCLUST_MEMORY_BUDGET_MB"]
    assert (
        budget.startswith("${DEEPCLUST_MEMORY_BUDGET_MB:-")
        and "memory_budget_mb" in Settings.model_fields
    )
    assert set(override["services"]) <= set(services), "the override names a service the base lacks"
    devices = override["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert (
        "docker compose -f docker-compose.yml -f docker-compose.gpu.yml up"
        in COMPOSE_GPU.read_text()
    )


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_user_port_and_cmd():
    instructions = dockerfile_instructions()
    names = [name for name, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert ("EXPOSE", "8000") in instructions
    cmd = [args for name, args in instructions if name == "CMD"]
    assert len(cmd) == 1 and json.loads(cmd[0]) == API_CMD, (
        "CMD must be the exec form of the API command"
    )
    users = [args for name, args in instructions if name == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert names.index("USER") > max(i for i, n in enumerate(names) if n == "RUN"), (
        "installs run before USER"
    )


def test_dockerfile_installs_requirements_and_the_project():
    runs = " ".join(args for name, args in dockerfile_instructions() if name == "RUN")
    env = " ".join(args for name, args in dockerfile_instructions() if name == "ENV")
    assert re.search(r"pip install[^&;]* -r requirements\.txt", runs)
    assert re.search(r"pip install[^&;]* --no-deps[^&;]* -e \.", runs) or "PYTHONPATH=/app" in env


def test_dockerfile_copies_exist_and_cover_the_packages():
    sources = copy_sources()
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    copied = {Path(s).parts[0] for s in sources}
    if "." in copied:
        return  # everything is copied
    assert {"requirements.txt", "pyproject.toml", "alembic.ini"} <= copied
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"


def test_dockerignore_excludes_local_state_but_nothing_copied():
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", "bench/cache"} <= patterns
    assert any("__pycache__" in p for p in patterns)
    for source in copy_sources():
        assert source.rstrip("/") not in patterns, (
            f"{source} is copied but excluded by .dockerignore"
        )


# --------------------------------------------------------------------------- modules the files name


def test_api_module_imports_and_serves_health(app_env):
    module, _, attribute = API_CMD[1].partition(":")
    result = run_python(
        f"import json, {module} as m; print(json.dumps(sorted(m.{attribute}.openapi()['paths'])))",
        app_env,
    )
    assert result.returncode == 0, result.stderr
    assert {"/health", "/ready"} <= set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_worker_module_imports_as_a_celery_app(services, app_env):
    module = argv(services["worker"]["command"])[2]
    result = run_python(
        f"import celery, {module} as m; assert isinstance(m.app, celery.Celery); "
        f"print(m.app.conf.task_default_queue)",
        app_env,
    )
    assert result.returncode == 0, result.stderr
    command = argv(services["worker"]["command"])
    assert result.stdout.strip() == command[command.index("-Q") + 1]


def test_alembic_finds_its_config_and_migrations_from_the_workdir(app_env):
    # `alembic upgrade head` in the image runs in WORKDIR /app, the repository root here.
    assert (ROOT / "alembic.ini").is_file()
    result = run_python("from alembic.config import main; main(argv=['heads'])", app_env)
    assert result.returncode == 0, result.stderr
    assert "(head)" in result.stdout

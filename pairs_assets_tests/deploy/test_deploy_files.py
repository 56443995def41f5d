"""deploy/: the compose file is valid Compose (the compose-spec JSON schema vendored by
check-jsonschema), its commands name real entry points, and every variable the instance and the
workspace read is given to the processes that load them. Containers cannot run here."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
from importlib import resources as importlib_resources
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pairs_assets.cli import main as pairs_cli
from pairs_assets.settings import PACKAGE_DIR

ROOT = PACKAGE_DIR.parent
DEPLOY = ROOT / "deploy"
DAGSTER_PROCESSES = {"code-server", "webserver", "daemon", "worker"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def _env_refs(path: Path) -> set[str]:
    """``env: NAME`` entries of a Dagster YAML file."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(path.read_text()))
    return found


def test_compose_file_matches_the_compose_spec_schema(compose):
    jsonschema = pytest.importorskip("jsonschema")
    schema_file = importlib_resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    # and a broken file is caught: an unknown service key
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["comand"] = ["pairs", "worker"]
    assert list(validator.iter_errors(broken))


def test_topology_has_every_process(compose):
    assert {"postgres", "rabbitmq", "mlflow", "code-server", "webserver", "daemon", "worker"} <= set(
        compose["services"]
    )


def test_commands_name_real_entry_points(compose):
    scripts = Path(sys.executable).parent
    for name, service in compose["services"].items():
        command = service.get("command")
        if command is None:
            continue
        program, *args = command
        if program == "pairs":
            result = CliRunner().invoke(pairs_cli, [*args, "--help"])
            assert result.exit_code == 0, f"{name}: pairs {' '.join(args)}: {result.output}"
        else:
            assert (scripts / program).exists() or shutil.which(program), f"{name}: no entry point {program}"
        if "-m" in args:
            importlib.import_module(args[args.index("-m") + 1])
        if "-w" in args:
            assert args[args.index("-w") + 1] == "/opt/pairs/deploy/workspace.yaml"


def test_dagster_processes_get_every_variable_the_instance_and_workspace_read(compose):
    needed = _env_refs(DEPLOY / "dagster.yaml") | _env_refs(DEPLOY / "workspace.yaml")
    assert {"PAIRS_DAGSTER_DB_URL", "PAIRS_CODE_SERVER_HOST", "PAIRS_CODE_SERVER_PORT"} <= needed
    for name in DAGSTER_PROCESSES:
        env = compose["services"][name]["environment"]
        assert needed <= set(env), f"{name} lacks {sorted(needed - set(env))}"
        assert env["PAIRS_EXECUTOR"] == "celery" and env["PAIRS_IO_BASE"]
    assert (
        compose["services"]["code-server"]["command"][-1]
        == compose["services"]["webserver"]["environment"]["PAIRS_CODE_SERVER_PORT"]
    )


def test_published_ports_bind_loopback_and_secrets_come_from_the_environment(compose):
    text = (DEPLOY / "docker-compose.yaml").read_text()
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # every password is a ${VAR:?…} substitution, never a literal
    for url in re.findall(r"[a-z+]+://[^\s\"']+@", text):
        assert re.search(r":\$\{[A-Z_]+:\?", url), f"literal credential in {url}"


def test_dockerfile_copies_existing_paths_and_starts_the_code_server():
    text = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY\s+(\S+)\s", text, flags=re.M):
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert '"torch==2.13.0"' in text
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])$", text, flags=re.M).group(1))
    assert cmd[:3] == ["dagster", "code-server", "start"] and "pairs_assets.definitions" in cmd


def test_scheduled_runs_carry_the_tag_the_run_queue_limits_per_sector():
    """The 6 AM tick's runs must carry the key the per-sector limit counts, one value per sector."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import dagster as dg

    from pairs_assets.definitions import defs

    limits = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    per_sector = [rule for rule in limits if rule.get("value") == {"applyLimitPerUniqueValue": True}]
    assert [(rule["key"], rule["limit"]) for rule in per_sector] == [("dagster/partition/sector", 1)]
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2022, 12, 29, 6, 0, tzinfo=ZoneInfo("America/New_York")),
            repository_def=defs.get_repository_def(),
        )
        requests = defs.get_schedule_def("daily_pairs_schedule").evaluate_tick(context).run_requests
    sectors = [r.tags.get("dagster/partition/sector") for r in requests]
    assert len(requests) == 6 and sorted(sectors) == sorted(set(sectors)) and None not in sectors

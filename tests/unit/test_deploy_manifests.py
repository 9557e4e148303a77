"""deploy/Dockerfile and deploy/kubernetes/, checked as far as a machine without Docker or
a cluster allows: every manifest against the Kubernetes JSON schemas (strict), every
container's arguments through careteam's own command-line parser, the ConfigMap through
careteam's own settings loader, and every file the Dockerfile copies exists."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.cli import build_parser
from services.partners.delivery import PartnerOptions
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
COMPONENTS = {"api", "projector", "relay", "partners", "sealer"}


def _resources() -> list[dict[str, Any]]:
    found = []
    for path in MANIFESTS:
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def _containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = resource["spec"]["template"]["spec"]["containers"]
    return containers


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [r for r in _resources() if r["kind"] == kind]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    version = kubernetes_validate.latest_version()
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_manifest_with_a_mistake_is_refused() -> None:
    """The check can fail: a misspelt field in a probe is caught."""
    (deployment,) = [d for d in _of_kind("Deployment") if d["metadata"]["name"] == "careteam-api"]
    container = _containers(deployment)[0]
    container["readinessProbe"]["httpGett"] = container["readinessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_one_deployment_per_component_with_resources_and_probes() -> None:
    deployments = {d["metadata"]["name"]: d for d in _of_kind("Deployment")}
    ran: set[str] = set()
    parser = build_parser()
    for name, deployment in deployments.items():
        (container,) = _containers(deployment)
        args = parser.parse_args(container["args"])
        assert args.command == "serve"
        parts = set(args.components.split(","))
        assert parts <= COMPONENTS, name
        ran |= parts
        assert deployment["spec"]["replicas"] >= 2, name
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        ready = container["readinessProbe"]["httpGet"]
        live = container["livenessProbe"]["httpGet"]
        assert (ready["path"], live["path"]) == ("/readyz", "/healthz"), name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ready["port"] in ports and live["port"] in ports, name
        if "api" not in parts:
            # A worker serves its probes on CARETEAM_HEALTH_PORT, the port they name.
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            settings = Settings.from_env(env)
            assert settings.health_port == ports[ready["port"]], name
    assert ran == COMPONENTS


def test_the_probes_name_routes_the_api_and_the_workers_serve() -> None:
    from services import health
    from services.api import app

    source = Path(app.__file__).read_text()
    assert 'Route("/readyz"' in source and 'Route("/healthz"' in source
    paths = {route.path for route in health.worker_app({}).routes}  # type: ignore[attr-defined]
    assert paths == {"/readyz", "/healthz"}


def test_the_migration_job_runs_careteam_migrate_and_deployments_do_not_migrate() -> None:
    (job,) = _of_kind("Job")
    (container,) = _containers(job)
    assert build_parser().parse_args(container["args"]).command == "migrate"
    (configmap,) = _of_kind("ConfigMap")
    assert configmap["data"]["CARETEAM_MIGRATE_ON_START"] == "false"


def test_the_configmap_is_settings_careteam_accepts_in_production() -> None:
    """Loaded by careteam's own settings reader, with stand-ins for the Secret's values."""
    (configmap,) = _of_kind("ConfigMap")
    data: dict[str, str] = configmap["data"]
    for name in data:
        assert name.startswith("CARETEAM_"), name
    secret = {
        "CARETEAM_DATABASE_URL": "postgresql://careteam@db.example.org/careteam",
        "CARETEAM_MASTER_KEY": "A" * 43 + "=",
        "CARETEAM_KAFKA_SASL_PASSWORD": "stand-in",
    }
    settings = Settings.from_env({**data, **secret})
    assert settings.is_production
    assert settings.kafka_topic_replication_factor == 3
    assert settings.migrate_on_start is False
    PartnerOptions.from_env({**data, **secret})


def test_every_file_the_dockerfile_copies_exists_and_the_entrypoint_is_careteam() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+)$", text, flags=re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _destination = shlex.split(line)
        for source in sources:
            assert (ROOT / source).exists(), source
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "careteam" in project["project"]["scripts"]
    assert 'ENTRYPOINT ["careteam"]' in text
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    for package in packages:
        assert f"COPY {package} ./{package}" in text, package
    assert "uv sync --frozen --no-dev" in text

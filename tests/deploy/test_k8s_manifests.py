"""deploy/k8s/: every manifest is valid Kubernetes (offline, against the schemas that
kubernetes-validate bundles), and the pieces fit together: secrets, media volume, GPUs,
probes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT, database_url_of_tests

K8S = ROOT / "deploy" / "k8s"
#: The oldest Kubernetes a lab is likely to run still, and the newest the package knows.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
SECRET_NAME = "seglab"
SECRET_KEYS = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
CONFIG_MAP_NAME = "seglab-config"
MEDIA_CLAIM = "seglab-media"
IMAGE = "seglab:latest"
#: Pods that read or write MEDIA_ROOT (datasets, checkpoints, overlays) or reconcile runs.
MEDIA_USERS = {"seglab-web", "seglab-worker", "seglab-cpu-worker", "seglab-reconciler"}
#: Enough for a run to stop at its next step, write last.pt and go back to the queue.
WORKER_GRACE_SECONDS = 120
MANIFEST_FILES = sorted(K8S.rglob("*.yaml"))


def load(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def resources() -> list[dict]:
    return [resource for path in MANIFEST_FILES for resource in load(path)]


def named(kind: str, name: str) -> dict:
    matches = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_templates() -> dict[str, dict]:
    """Name of the Deployment or Job -> its pod spec."""
    return {r["metadata"]["name"]: r["spec"]["template"]["spec"] for r in resources()
            if r["kind"] in ("Deployment", "StatefulSet", "Job")}


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod["containers"]


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda path: str(path.relative_to(K8S)))
def test_every_manifest_is_valid_kubernetes(path, version):
    documents = load(path)
    assert documents, f"{path} holds no manifest"
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{path.name}: {document['kind']} {document['metadata']['name']}: {where}: {error.message}")


def test_applying_the_folder_creates_no_secret():
    """`kubectl apply -f deploy/k8s/` does not descend into example/, where the Secret template is."""
    top_level = [resource for path in sorted(K8S.glob("*.yaml")) for resource in load(path)]
    assert not [r for r in top_level if r["kind"] == "Secret"]
    assert named("Secret", SECRET_NAME)["metadata"].get("namespace") is None


def test_the_secret_template_has_the_keys_every_pod_reads_and_only_placeholders():
    secret = named("Secret", SECRET_NAME)
    assert set(secret["stringData"]) == SECRET_KEYS
    assert all("example.org" in value or "REPLACE-ME" in value for value in secret["stringData"].values())


@pytest.mark.parametrize("pod_name", sorted(pod_templates()))
def test_every_container_gets_the_secrets_from_the_secret_and_the_settings_from_the_config_map(pod_name):
    for container in containers(pod_templates()[pod_name]):
        from_secret = {variable["name"]: variable["valueFrom"]["secretKeyRef"] for variable in container["env"]
                       if "secretKeyRef" in variable.get("valueFrom", {})}
        assert set(from_secret) == SECRET_KEYS, container["name"]
        assert all(ref == {"name": SECRET_NAME, "key": name} for name, ref in from_secret.items()), from_secret
        assert {"configMapRef": {"name": CONFIG_MAP_NAME}} in container["envFrom"]
        assert container["image"] == IMAGE


def test_the_settings_are_production_ones_behind_a_tls_ingress():
    settings = named("ConfigMap", CONFIG_MAP_NAME)["data"]
    assert settings["DEBUG"] == "false"
    assert settings["SEGLAB_HTTPS"] == "true"
    assert settings["ALLOWED_HOSTS"]
    assert not SECRET_KEYS & set(settings)


def test_web_workers_and_reconciler_mount_one_shared_media_volume_at_media_root():
    claim = named("PersistentVolumeClaim", MEDIA_CLAIM)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    media_root = named("ConfigMap", CONFIG_MAP_NAME)["data"]["MEDIA_ROOT"]
    pods = pod_templates()
    for pod_name in MEDIA_USERS:
        pod = pods[pod_name]
        volumes = {volume["name"] for volume in pod["volumes"]
                   if volume.get("persistentVolumeClaim", {}).get("claimName") == MEDIA_CLAIM}
        assert len(volumes) == 1, pod_name
        mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] in volumes]
        assert mounts == [media_root], pod_name


def test_the_gpu_worker_gets_one_gpu_and_trains_one_run_at_a_time_from_the_gpu_queue():
    pod = pod_templates()["seglab-worker"]
    worker = pod["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["command"][:4] == ["celery", "-A", "webapp", "worker"]
    assert flag(worker["command"], "--pool") == "solo"
    assert flag(worker["command"], "--concurrency") == "1"
    assert flag(worker["command"], "-Q") == "gpu"
    assert pod["terminationGracePeriodSeconds"] >= WORKER_GRACE_SECONDS


def test_the_cpu_worker_takes_the_cpu_queue_without_a_gpu():
    pod = pod_templates()["seglab-cpu-worker"]
    worker = pod["containers"][0]
    assert flag(worker["command"], "-Q") == "cpu"
    assert flag(worker["command"], "--concurrency") == "1"
    assert "nvidia.com/gpu" not in worker.get("resources", {}).get("limits", {})
    assert pod["terminationGracePeriodSeconds"] >= WORKER_GRACE_SECONDS


def test_one_reconciler_and_a_migrate_job():
    reconciler = named("Deployment", "seglab-reconciler")
    assert reconciler["spec"]["replicas"] == 1
    assert reconciler["spec"]["strategy"]["type"] == "Recreate"
    assert pod_templates()["seglab-reconciler"]["containers"][0]["command"] == ["python", "manage.py", "reconcile"]
    assert pod_templates()["seglab-migrate"]["containers"][0]["command"] == ["python", "manage.py", "migrate",
                                                                             "--noinput"]


def test_the_web_service_reaches_gunicorn_and_the_probes_ask_healthz():
    web = pod_templates()["seglab-web"]["containers"][0]
    assert web["command"][:2] == ["gunicorn", "webapp.wsgi:application"]
    port = next(p for p in web["ports"] if p["name"] == "http")
    assert flag(web["command"], "--bind") == f"0.0.0.0:{port['containerPort']}" == "0.0.0.0:8000"
    for probe in (web["readinessProbe"], web["livenessProbe"]):
        assert probe["httpGet"]["path"] == "/healthz/"
        assert probe["httpGet"]["port"] == "http"
    service = named("Service", "seglab-web")
    assert service["spec"]["selector"] == named("Deployment", "seglab-web")["spec"]["template"]["metadata"]["labels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


@pytest.mark.django_db
def test_the_probe_gets_200_over_http_with_the_pods_settings(tmp_path):
    """SEGLAB_HTTPS redirects plain http and ALLOWED_HOSTS refuses unknown hosts: the probe
    must be neither redirected nor refused, as Django answers it with the ConfigMap's settings."""
    database_url = database_url_of_tests()
    probe = pod_templates()["seglab-web"]["containers"][0]["readinessProbe"]["httpGet"]
    host = next(header["value"] for header in probe["httpHeaders"] if header["name"] == "Host")
    env = {**os.environ, **named("ConfigMap", CONFIG_MAP_NAME)["data"], "MEDIA_ROOT": str(tmp_path),
           "DATABASE_URL": database_url, "SECRET_KEY": "probe-test-" + "x" * 50,
           "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    script = ("import django; django.setup(); from django.test import Client; "
              f"print(Client().get({probe['path']!r}, HTTP_HOST={host!r}).status_code)")
    answer = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert answer.stdout.strip().splitlines()[-1:] == ["200"], answer.stderr[-2000:]


def test_gpu_workers_keep_decoded_images_on_the_nodes_disk():
    """SEGLAB_DECODE_CACHE (engine/data/decode_cache.py) on a disk-backed volume of the pod, not
    on the image's filesystem and not in memory."""
    pod = pod_templates()["seglab-worker"]
    (worker,) = pod["containers"]
    folder = next(item["value"] for item in worker["env"] if item["name"] == "SEGLAB_DECODE_CACHE")
    mount = next(m for m in worker["volumeMounts"] if folder.startswith(m["mountPath"].rstrip("/") + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume and volume["emptyDir"].get("medium") != "Memory"

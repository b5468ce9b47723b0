"""deploy/compose: the compose file parses, its services are wired together (two
gateways on one Redis, Prometheus scraping both with the alert rules loaded), every
file it references exists, and promtool accepts the Prometheus configuration. (Docker
itself is not run here.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_two_gateways_share_one_redis_and_prometheus_scrapes_both() -> None:
    compose = _load(COMPOSE / "compose.yaml")
    services = compose["services"]
    assert {"redis", "gateway-a", "gateway-b", "prometheus"} <= set(services)
    gateways = [services["gateway-a"], services["gateway-b"]]
    for gateway in gateways:
        assert gateway["command"][0] == "gateway"
        assert gateway["environment"]["GEMINI_FAILOVER_REDIS_URL"] == "redis://redis:6379/0"
        assert "GEMINI_FAILOVER_GATEWAY_KEYS" in gateway["environment"]
    host_ports = {g["ports"][0].split(":")[0] for g in gateways}
    assert len(host_ports) == 2

    prometheus = _load(COMPOSE / "prometheus.yml")
    (job,) = prometheus["scrape_configs"]
    targets = job["static_configs"][0]["targets"]
    assert targets == ["gateway-a:8080", "gateway-b:8080"]
    secret = Path(job["authorization"]["credentials_file"]).name
    assert secret in services["prometheus"]["secrets"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    for rule_file in prometheus["rule_files"]:
        assert (COMPOSE / mounted[rule_file]).resolve() == ROOT / "deploy/prometheus/alerts.yml"


def test_every_referenced_file_exists() -> None:
    compose = _load(COMPOSE / "compose.yaml")
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (COMPOSE / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
            assert (context / "pyproject.toml").is_file(), name
        for volume in service.get("volumes", []):
            assert (COMPOSE / volume.split(":")[0]).exists(), f"{name}: {volume}"
    dockerfile = (COMPOSE / "Dockerfile").read_text(encoding="utf-8")
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), line


def test_promtool_accepts_the_prometheus_configuration(tmp_path: Path) -> None:
    assert shutil.which("promtool"), "promtool missing: run .ci/ensure-tools.sh"
    config = _load(COMPOSE / "prometheus.yml")
    # the container paths, pointed at the files they are mounted from
    config["rule_files"] = [str(ROOT / "deploy/prometheus/alerts.yml")]
    key = tmp_path / "gateway_key"
    key.write_text("example-key\n", encoding="utf-8")
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(key)
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        ["promtool", "check", "config", str(checked)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

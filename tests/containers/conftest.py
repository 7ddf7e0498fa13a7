"""A private Docker Engine for the container tests, started once per session.

`dockerd` runs with its data, state and socket in a temporary folder (and its own
containerd namespace), without networking (no bridge, no iptables: nothing on the
host changes), and `DOCKER_HOST` points at it for the session. No registry is
reachable, so the test images are built `FROM scratch` from host binaries: busybox,
and redis-server with the libraries `ldd` lists. At the end every container is
removed, the daemon stopped, and anything it left (processes, mounts) cleaned up.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from containers.docker_support import IDLE, TEST_LABEL, TIMINGS, RunContainer

BUSYBOX_IMAGE = "opsgraph-test/busybox"
REDIS_IMAGE = "opsgraph-test/redis"
INSTALL_HINT = "install docker.io (apt-get install docker.io busybox-static)"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Engine:
    root: Path
    host: str
    client: docker.DockerClient


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_line("docker tests: " + ", ".join(f"{k} {v:.2f} s" for k, v in TIMINGS.items()))


def _dockerd() -> str:
    found = shutil.which("dockerd") or next(
        (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if Path(p).exists()), None
    )
    if found is None or not Path("/bin/busybox").exists():
        pytest.fail(f"the container tests need a Docker Engine and busybox: {INSTALL_HINT}", pytrace=False)
    return found


def _wait_for_engine(host: str, process: subprocess.Popen[bytes], log: Path) -> docker.DockerClient:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"dockerd exited with {process.returncode}:\n{log.read_text()[-3000:]}", pytrace=False)
        try:
            client = docker.DockerClient(base_url=host, timeout=30)
            client.ping()
            return client
        except DockerException:
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                pytest.fail(f"dockerd did not answer in {START_TIMEOUT_S:.0f} s:\n{tail}", pytrace=False)
            time.sleep(0.05)


def _our_processes(root: Path) -> list[int]:
    """Processes whose command line names our folder (containerd, shims): ours to stop."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if str(root).encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue  # it exited meanwhile
    return pids


def _our_mounts(root: Path) -> list[str]:
    """Mount points under our folder (the daemon leaves its `netns/default` bind mount behind)."""
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p.startswith(f"{root}/")), key=len, reverse=True)


def _stop(process: subprocess.Popen[bytes], root: Path) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for pid in _our_processes(root):
        os.kill(pid, signal.SIGKILL)
    for point in _our_mounts(root):
        subprocess.run(["umount", point], check=True, capture_output=True)
    shutil.rmtree(root)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    dockerd = _dockerd()
    began = time.monotonic()
    # Short path: unix socket paths are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="og-dockerd-", dir="/tmp"))
    host = f"unix://{root}/docker.sock"
    log = root / "dockerd.log"
    (root / "daemon.json").write_text("{}")  # not the host's /etc/docker/daemon.json
    command = [
        dockerd, "--config-file", f"{root}/daemon.json",
        "--data-root", f"{root}/data", "--exec-root", f"{root}/exec", "--pidfile", f"{root}/dockerd.pid",
        "-H", host, "--iptables=false", "--bridge=none",
        "--containerd-namespace", "opsgraph-test", "--containerd-plugins-namespace", "opsgraph-test-plugins",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = _wait_for_engine(host, process, log)
        TIMINGS["dockerd_start_s"] = time.monotonic() - began
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DOCKER_HOST", host)
            yield Engine(root, host, client)
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
    finally:
        stopping = time.monotonic()
        _stop(process, root)
        TIMINGS["dockerd_stop_s"] = time.monotonic() - stopping


def _copy_with_libraries(binary: str, rootfs: Path, name: str) -> None:
    """A host binary and every shared library it loads, at the same paths in the image."""
    target = rootfs / name.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(binary).resolve(), target)  # redis-server is a symlink to redis-check-rdb
    listing = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    for library in (word for line in listing.splitlines() for word in line.split() if word.startswith("/")):
        copy = rootfs / library.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(library).resolve(), copy)


@pytest.fixture(scope="session")
def images(docker_engine: Engine) -> dict[str, str]:
    """Build the busybox and redis images (classic builder, FROM scratch: nothing is pulled)."""
    began = time.monotonic()
    build = docker_engine.root / "build"
    busybox = build / "busybox"
    busybox.mkdir(parents=True)
    shutil.copy("/bin/busybox", busybox / "busybox")
    (busybox / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCMD ["sh"]\n'
    )
    docker_engine.client.images.build(path=str(busybox), tag=BUSYBOX_IMAGE, rm=True, forcerm=True)
    redis = build / "redis"
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is missing: apt-get install redis-server"
    _copy_with_libraries(server, redis / "rootfs", "/usr/bin/redis-server")
    (redis / "Dockerfile").write_text(f'FROM {BUSYBOX_IMAGE}\nCOPY rootfs/ /\nCMD ["redis-server"]\n')
    docker_engine.client.images.build(path=str(redis), tag=REDIS_IMAGE, rm=True, forcerm=True)
    TIMINGS["image_builds_s"] = time.monotonic() - began
    return {"busybox": BUSYBOX_IMAGE, "redis": REDIS_IMAGE}


@pytest.fixture
def run_container(docker_engine: Engine, images: dict[str, str]) -> Iterator[RunContainer]:
    """Start a container from a test image (`image="busybox"|"redis"`); all are removed after the test."""
    started: list[str] = []

    def run(image: str = "busybox", command: list[str] | None = None, **options: Any) -> Container:
        name = options.pop("name", None) or f"t-{uuid.uuid4().hex[:8]}"
        labels = {TEST_LABEL: "1", **options.pop("labels", {})}
        container: Container = docker_engine.client.containers.run(
            images[image], command or IDLE, name=name, labels=labels, detach=True, **options
        )
        started.append(container.name)
        return container

    yield run
    for name in started:
        try:
            docker_engine.client.containers.get(name).remove(force=True)
        except NotFound:
            continue  # the test removed it
    for clone in docker_engine.client.containers.list(all=True, filters={"label": TEST_LABEL}):
        clone.remove(force=True)  # replicas created by docker_scale carry the label too

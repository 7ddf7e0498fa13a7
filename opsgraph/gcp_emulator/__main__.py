"""`python -m opsgraph.gcp_emulator --config FILE.yaml --folder DIR [--port N]`: the GCP emulator in the foreground.

The YAML mirrors EmulatorConfig, plus an optional `service_account: {name, permissions}`
for the key file written at start (default opsgraph-sa with every permission). Prints
one JSON line with the endpoints and the key file's path, then serves until SIGTERM or
SIGINT. A bad config file or an unreachable backing server -> a clear message, exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsgraph.gcp_emulator.config import EmulatorConfig
from opsgraph.gcp_emulator.emulator import GcpEmulator
from opsgraph.gcp_emulator.errors import BackendError


class ServiceAccountSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="opsgraph-sa", pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    permissions: list[str] = Field(default_factory=lambda: ["*"])


class EmulatorFile(EmulatorConfig):
    """The config file: an EmulatorConfig and the identity whose key file is written at start."""

    service_account: ServiceAccountSpec = Field(default_factory=ServiceAccountSpec)


def load(path: Path) -> EmulatorFile:
    """The validated config file; ValueError naming the file and what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return EmulatorFile.model_validate(data)
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read the emulator config: {error}") from error
    except ValidationError as error:
        raise ValueError(f"{path}: invalid emulator config:\n{error}") from error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsgraph.gcp_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="YAML mirroring EmulatorConfig")
    parser.add_argument("--folder", type=Path, required=True, help="where the key file is written")
    parser.add_argument("--port", type=int, default=0, help="REST port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--monitoring-port", type=int, default=0, help="gRPC port (default: a free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        config = load(args.config)
        emulator = GcpEmulator(config, args.folder, port=args.port, monitoring_port=args.monitoring_port).start()
    except (ValueError, BackendError, OSError) as error:
        print(f"gcp emulator: {error}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        account = config.service_account
        key_file = emulator.key_file(account.name, frozenset(account.permissions))
        print(json.dumps({
            "emulator": "gcp", "project": config.project, "api_endpoint": emulator.api_endpoint,
            "monitoring_endpoint": emulator.monitoring_endpoint, "key_file": str(key_file),
        }), flush=True)  # fmt: skip
        stopping.wait()
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

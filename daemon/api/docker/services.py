"""The servicers the gateway's handlers call: the very objects the gRPC server serves."""

from __future__ import annotations

from dataclasses import dataclass

from pallet.daemon.api.builds import BuildsServicer
from pallet.daemon.api.containers import ContainersServicer
from pallet.daemon.api.events import EventsServicer
from pallet.daemon.api.images import ImagesServicer
from pallet.daemon.api.networks import NetworksServicer
from pallet.daemon.api.system import SystemServicer
from pallet.daemon.api.volumes import VolumesServicer


@dataclass(frozen=True, slots=True)
class Servicers:
    containers: ContainersServicer
    images: ImagesServicer
    builds: BuildsServicer
    networks: NetworksServicer
    volumes: VolumesServicer
    events: EventsServicer
    system: SystemServicer

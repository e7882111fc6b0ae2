"""pallet CLI and gRPC client library.

`from pallet.client import PalletClient` gives the typed client (`pallet.client.api`); it is
imported on first use so that `pallet --help` never pays for protobuf or the connection.
It speaks gRPC with its own small transport (`pallet.client.wire`), not grpcio.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PalletClient"]


def __getattr__(name: str) -> Any:
    if name == "PalletClient":
        from pallet.client.api import PalletClient

        return PalletClient
    raise AttributeError(f"module 'pallet.client' has no attribute {name!r}")

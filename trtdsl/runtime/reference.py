"""``ReferenceSession``: the Session interface on the CPU, through the NumPy reference interpreter.

Code written against ``Session`` runs unchanged on a machine without a usable
GPU by swapping one constructor::

    session = trtdsl.Session(plan) if gpu else trtdsl.ReferenceSession(net)
    out = session.run({"x": x})["logits"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..argcheck import network_of
from ..errors import TrtdslError


def _to_host(value: Any) -> np.ndarray:
    from .array import DeviceArray, is_device

    if is_device(value):
        return DeviceArray.from_object(value).numpy()
    return np.asarray(value)


class ReferenceHandle:
    """A finished request (the interpreter runs synchronously); same methods as ``RunHandle``."""

    def __init__(self, result: dict[str, np.ndarray]):
        self._result = result

    def done(self) -> bool:
        return True

    def wait(self) -> None:
        return None

    def result(self) -> dict[str, np.ndarray]:
        return self._result

    @property
    def timings(self) -> dict[str, float]:
        raise TrtdslError("ReferenceSession runs on the CPU and records no GPU timings")


class ReferenceSession:
    """Run a ``trtdsl.Network`` (or a raw ``INetworkDefinition``) with ``trtdsl.reference.run``.

    Feeds are checked against the network's inputs and profiles exactly as the
    interpreter does. Anything ``np.asarray`` takes is accepted, and device arrays
    (DeviceArray, torch CUDA tensors) are copied to the host. ``outputs="device"`` is accepted for interface
    compatibility and returns NumPy arrays.
    """

    def __init__(self, network: Any):
        from .. import reference

        network_of(network, "ReferenceSession")
        self.network = network
        self._reference = reference
        self._prepared = reference.prepare(network)

    @property
    def input_names(self) -> list[str]:
        return list(self._prepared.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._prepared.outputs)

    def run(self, feeds: Mapping[str, Any], *, outputs: str = "host") -> dict[str, np.ndarray]:
        """Outputs by name as NumPy arrays."""
        return self.run_async(feeds, outputs=outputs).result()

    def run_async(
        self, feeds: Mapping[str, Any], *, stream: Any = None, outputs: str = "host", timing: bool = False
    ) -> ReferenceHandle:
        """Run now and return a finished handle; ``stream`` is ignored (there is no device)."""
        if outputs not in ("host", "device"):
            raise TrtdslError(f"outputs must be 'host' or 'device', got {outputs!r}")
        if timing:
            raise TrtdslError("ReferenceSession runs on the CPU and records no GPU timings (timing=True)")
        host = {n: _to_host(v) for n, v in feeds.items()}
        return ReferenceHandle(self._reference.run(self.network, host))

    def graph(self, shapes: Mapping[str, Any]) -> ReferenceSession:
        """There is nothing to capture on the CPU: the session itself replays any shapes."""
        return self

    def close(self) -> None:
        return None

    def __enter__(self) -> ReferenceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Signed reads made from simulator ground truth (real evidence JPEGs, no recogniser): for uplink
tests, the fleet load generator and `anpr-edge bench uplink`."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.pipeline.evidence import overview, plate_patch
from agent.read_doc import Clock, Image, Models, Read, uuid7
from agent.signing import sign


def make_read(frame, plate, site: str, camera: str, key: Ed25519PrivateKey, read_id: str | None = None,
              captured_ms: int | None = None) -> Read:
    import numpy as np

    patch = plate_patch(frame.pixels, np.array(plate.polygon))
    ov = overview(frame.pixels)
    ms = int(frame.utc_time * 1000) if captured_ms is None else captured_ms
    read = Read(
        read_id=read_id or uuid7(ms), site_id=site, camera_id=camera, lane=plate.lane,
        captured_at=dt.datetime.fromtimestamp(ms / 1000, dt.UTC), clock=Clock(source="ntp", synchronised=True),
        vrm=plate.vrm, confidence=0.99, char_confidences=[0.99] * len(plate.vrm),
        format=plate.format, plate_colour="yellow" if plate.rear else "white", direction=plate.direction,
        frames=1, bbox=list(plate.bbox),
        plate_patch=Image.from_jpeg(patch.data, patch.width, patch.height),
        overview=Image.from_jpeg(ov.data, ov.width, ov.height),
        model=Models(detector="ground-truth", reader="ground-truth"),
    )
    return sign(read, key)


def truth_reads(site: str, camera: str, key: Ed25519PrivateKey, seed: int = 0,
                id_seed: int | None = None) -> Iterator[Read]:
    """Endless reads, one per vehicle plate fully in frame (first sighting). With `id_seed`, read
    ids are deterministic (k-th read, same id), so a restarted producer re-creates the same reads."""
    from sim.camera import SimCamera, SimCameraSettings

    cam = SimCamera(SimCameraSettings(seed=seed, rate_per_hour=3000, exposure_us=600))
    seen: set[int] = set()
    rnd = random.Random(id_seed)
    base_ms = 1_790_000_000_000 + (id_seed or 0) * 10_000_000
    k = 0
    while True:
        f = cam.capture()
        for p in f.truth.plates:
            if p.in_frame and p.vehicle_id not in seen:
                seen.add(p.vehicle_id)
                rid = None
                ms = None
                if id_seed is not None:
                    ms = base_ms + k * 40
                    rid = uuid7(ms, rnd.getrandbits(74))
                k += 1
                yield make_read(f, p, site, camera, key, rid, ms)


class ReadFactory:
    """Fast signed reads for load and failure tests: real evidence JPEGs from `pool` distinct
    simulated plates, reused with fresh (or deterministic) read ids, times and VRMs."""

    def __init__(self, site: str, camera: str, key: Ed25519PrivateKey, pool: int = 8, seed: int = 0) -> None:
        src = truth_reads(site, camera, key, seed=seed)
        self.templates = [next(src) for _ in range(pool)]
        self.key = key

    def read(self, k: int, id_seed: int | None = None) -> Read:
        t = self.templates[k % len(self.templates)]
        if id_seed is None:
            ms, rid = int(dt.datetime.now(dt.UTC).timestamp() * 1000), uuid7()
        else:
            ms = 1_790_000_000_000 + id_seed * 10_000_000 + k * 40
            rid = uuid7(ms, random.Random(id_seed * 1_000_003 + k).getrandbits(74))
        r = t.model_copy(update={"read_id": rid, "captured_at": dt.datetime.fromtimestamp(ms / 1000, dt.UTC),
                                 "signature": None})
        return sign(r, self.key)

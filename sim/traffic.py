"""Traffic: lanes, Poisson arrivals, speeds (20-130 km/h), both directions, deterministic per seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sim.plates import PlateText, generate
from sim.render import PlateStyle

Direction = Literal["towards", "away"]

VEHICLE_KINDS = {
    # kind: (length, width, height) in metres, share of traffic
    "car": ((4.3, 1.8, 1.45), 0.62),
    "suv": ((4.6, 1.9, 1.75), 0.18),
    "van": ((5.2, 2.0, 2.3), 0.12),
    "truck": ((9.0, 2.5, 3.4), 0.05),
    "bus": ((11.0, 2.55, 3.1), 0.03),
}


@dataclass(frozen=True, slots=True)
class Lane:
    index: int
    centre_x: float  # metres, lateral, camera at x = 0
    direction: Direction
    width: float = 3.5


@dataclass(slots=True)
class Vehicle:
    id: int
    lane: Lane
    plate: PlateText
    style: PlateStyle
    kind: str
    size: tuple[float, float, float]  # length, width, height (m)
    colour: tuple[int, int, int]  # BGR reflectance
    speed: float  # m/s
    y0: float  # position of the near face along the road (m) at t0
    t0: float
    plate_height: float  # centre of plate above ground (m)
    plate_offset_x: float  # lateral offset of the plate from the vehicle centre (m)
    occluder: tuple[float, float, float, float] | None = None  # plate-relative box (x, y, w, h) 0..1

    def near_face_y(self, t: float) -> float:
        dy = self.speed * (t - self.t0)
        return self.y0 - dy if self.lane.direction == "towards" else self.y0 + dy

    @property
    def x(self) -> float:
        return self.lane.centre_x


def default_lanes() -> list[Lane]:
    return [Lane(0, -1.75, "towards"), Lane(1, 1.75, "away")]


def random_vehicle(rng: np.random.Generator, vid: int, lane: Lane, y0: float, t0: float,
                   foreign_rate: float = 0.02, occlusion_rate: float = 0.03,
                   speed_kmh: tuple[float, float] = (20.0, 130.0)) -> Vehicle:
    kinds = list(VEHICLE_KINDS)
    p = np.array([VEHICLE_KINDS[k][1] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    (ln, wd, ht) = VEHICLE_KINDS[kind][0]
    jitter = rng.uniform(0.92, 1.08, 3)
    lo, hi = speed_kmh
    speed = float(np.clip(rng.normal((lo + hi) / 2 * 0.85, (hi - lo) / 5), lo, hi)) / 3.6
    rear = lane.direction == "away"
    palette = [(40, 40, 40), (230, 230, 230), (180, 180, 185), (120, 120, 125), (30, 30, 150), (140, 60, 20),
               (40, 90, 30), (20, 20, 20), (200, 200, 210), (60, 120, 200)]
    colour = palette[int(rng.integers(len(palette)))]
    occ = None
    if rng.random() < occlusion_rate:
        occ = (float(rng.uniform(0.0, 0.7)), float(rng.uniform(0.0, 0.6)), float(rng.uniform(0.08, 0.25)), 1.0)
    return Vehicle(
        id=vid,
        lane=lane,
        plate=generate(rng, foreign_rate),
        style=PlateStyle.random(rng, rear=rear),
        kind=kind,
        size=(ln * jitter[0], wd * jitter[1], ht * jitter[2]),
        colour=colour,
        speed=speed,
        y0=y0,
        t0=t0,
        plate_height=float(rng.uniform(0.35, 0.65) if kind in ("car", "suv") else rng.uniform(0.45, 0.9)),
        plate_offset_x=float(rng.normal(0, 0.05)),
        occluder=occ,
    )


@dataclass(slots=True)
class Traffic:
    """Spawns vehicles at the edge of the scene with Poisson arrivals per lane and removes them
    when they have left; the same seed gives the same vehicles at the same simulated times."""

    lanes: list[Lane]
    rate_per_hour: float = 900.0  # per lane
    seed: int = 0
    y_far: float = 45.0  # where towards-traffic appears (m)
    y_behind: float = -6.0  # where away-traffic appears, behind the camera (m)
    foreign_rate: float = 0.02
    speed_kmh: tuple[float, float] = (20.0, 130.0)
    vehicles: list[Vehicle] = field(default_factory=list)
    _rng: np.random.Generator = field(init=False)
    _next_arrival: dict[int, float] = field(init=False)
    _next_id: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._next_arrival = {ln.index: float(self._rng.exponential(3600.0 / self.rate_per_hour) * 0.3)
                              for ln in self.lanes}

    def step(self, t: float) -> list[Vehicle]:
        for lane in self.lanes:
            while self._next_arrival[lane.index] <= t:
                ta = self._next_arrival[lane.index]
                start = self.y_far if lane.direction == "towards" else self.y_behind
                v = random_vehicle(self._rng, self._next_id, lane, start, ta, self.foreign_rate,
                                   speed_kmh=self.speed_kmh)
                # Keep a safe gap behind the previous vehicle in the lane: hold the arrival back.
                prev = [o for o in self.vehicles if o.lane.index == lane.index]
                ok = True
                if prev:
                    last = prev[-1]
                    gap = abs(last.near_face_y(ta) - start) - last.size[0]
                    if gap < max(4.0, 1.2 * v.speed):
                        ok = False
                if ok:
                    self.vehicles.append(v)
                    self._next_id += 1
                    self._next_arrival[lane.index] = ta + float(self._rng.exponential(3600.0 / self.rate_per_hour))
                else:
                    self._next_arrival[lane.index] = ta + 0.4
        self.vehicles = [v for v in self.vehicles if self.y_behind - 8 <= v.near_face_y(t) <= self.y_far + 20]
        return self.vehicles

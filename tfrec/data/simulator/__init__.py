"""A YouTube-like world with ground truth (docs/PROTOCOL.md, P2).

    world, events = simulate(preset("tiny"), seed=0)   # EventTables, like every other source
    world.expected_watch_time(users, videos, times, positions)  # the truth, for evaluation

`tfrec data simulate --preset small --out DIR` writes the same tables as Parquet, with
simulation.json from which `load_world(DIR)` rebuilds the world.
"""
from collections.abc import Callable

from tfrec.data.schema import EventTables
from tfrec.data.simulator.behaviour import DayLogs, simulate_days
from tfrec.data.simulator.config import PRESETS, SimulatorConfig, preset
from tfrec.data.simulator.tables import event_tables, load_world, write_simulation
from tfrec.data.simulator.world import World, build_world

__all__ = ["PRESETS", "SimulatorConfig", "World", "build_world", "load_world", "preset",
           "simulate", "simulate_to_parquet"]


def simulate(config: SimulatorConfig, seed: int = 0,
             progress: Callable[[int, int], object] | None = None) -> tuple[World, EventTables]:
    """Simulate a world in memory: returns (World, EventTables)."""
    world = build_world(config, seed)
    logs = DayLogs.concatenate([logs for _, logs in simulate_days(world, progress)])
    return world, event_tables(world, logs)


def simulate_to_parquet(config: SimulatorConfig, directory: str, seed: int = 0,
                        progress: Callable[[int, int], object] | None = None
                        ) -> dict[str, int]:
    """Simulate a world day by day straight into Parquet tables; returns row counts."""
    world = build_world(config, seed)
    return write_simulation(world, simulate_days(world, progress), directory)

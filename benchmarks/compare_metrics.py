"""Are two runs' figures equal? Compares two metrics.json files number by number.

    python benchmarks/compare_metrics.py runs/a/metrics.json runs/b/metrics.json [--tol 1e-6]

Timings and cache bookkeeping (`timings_s`, `stages`, `seconds`, any key ending in `_seconds`,
`_per_second` or `_qps`) are left out: they are measured, not computed. Exit code 1 and one
line per difference when a figure differs by more than `--tol` (absolute), or a key or a string
is only on one side; 0 when every figure agrees. Used to check that a refactor changed no figure.
"""
import argparse
import json
import math
import sys

SKIPPED = {"timings_s", "stages", "seconds"}


def _skipped(key: str) -> bool:
    return key in SKIPPED or key.endswith(("_seconds", "_per_second", "_qps"))


def differences(a: object, b: object, tol: float, path: str = "") -> list[str]:
    """Lines naming each figure (dotted path) where `a` and `b` differ by more than `tol`."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if _skipped(key):
                continue
            where = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(f"{where}: only in {'second' if key not in a else 'first'}")
            else:
                out += differences(a[key], b[key], tol, where)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} entries"]
        return [line for i, (x, y) in enumerate(zip(a, b))
                for line in differences(x, y, tol, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return []
        return [] if abs(a - b) <= tol else [f"{path}: {a!r} vs {b!r} (diff {a - b:+.3g})"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args(argv)
    with open(args.first) as f, open(args.second) as g:
        lines = differences(json.load(f), json.load(g), args.tol)
    for line in lines:
        print(line)
    print(f"{len(lines)} difference(s) beyond {args.tol:g}" if lines else
          f"every figure equal to {args.tol:g}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())

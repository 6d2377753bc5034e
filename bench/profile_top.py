"""Summarise a `py-spy record --format raw` profile (collapsed stacks): where the CPU went.

Prints the share of samples per package (self: the innermost frame's package; inclusive:
a sample counts for every package on its stack), the top leaf functions (self time) and the
top functions of this project (inclusive). Under uvloop, coroutine stacks start at the
resumed coroutine, not at main(), so inclusive shares of outer frames are understated.

    .venv/bin/python bench/profile_top.py bench/results/logs/<run>/worker-profile-rep0.txt
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
OWN = ("app", "workers", "contracts")


def package_of(path: str) -> str:
    """py-spy shortens paths to the importable part: 'sqlalchemy/engine/base.py'."""
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    path = path.lstrip("/")
    if path.startswith("<frozen"):
        return "importlib"
    head = path.split("/", 1)[0]
    if "/" not in path:
        head = head.removesuffix(".py")
    return head or "?"


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        frames_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = []
        for frame in frames_text.split(";"):
            match = _FRAME.match(frame.strip())
            if match:
                frames.append((match["func"], match["file"]))
            else:
                frames.append((frame.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks


def summarise(path: Path, top: int = 15) -> str:
    stacks = parse(path)
    total = sum(count for _, count in stacks) or 1
    packages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    leaf_packages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        for name in {package_of(file) for _, file in frames if file}:
            packages[name] += count
        if frames:
            func, file = frames[-1]
            leaves[f"{func} ({Path(file).name})"] += count
            leaf_packages[package_of(file) if file else "?"] += count
        for func in {f"{f} ({Path(file).name})" for f, file in frames if package_of(file) in OWN}:
            own[func] += count
    lines = [f"{path}: {total} samples"]
    lines.append("\npackages (self: the package of the innermost frame):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in leaf_packages.most_common(top)]
    lines.append("\npackages (inclusive share of samples):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in packages.most_common(top)]
    lines.append("\ntop leaf functions (self):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in leaves.most_common(top)]
    lines.append("\nproject functions (inclusive):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()

"""Thin install against full install: the time and size of ``pip install`` in fresh venvs.

Run from the repository root (not part of ``make bench``: about 4-6 minutes, network-bound)::

    python3 benchmarks/install.py                 # thin, then full (pip cache as it is)
    python3 benchmarks/install.py --no-cache-dir  # a third run: thin with pip's cache off
    python3 benchmarks/install.py --only thin     # just one of them

- thin: ``pip install <checkout>`` (the base dependencies: no torch, no llama.cpp);
- full: ``pip install "<checkout>[all]" torch==2.13.0`` (the Makefile's CPU pin), i.e. what a
  user of the local footing, the service and the notebook installs (``make`` adds the test
  tools on top: the ``dev`` extra).

Each install runs in a new venv (``python3 -m venv``, pip as shipped); the time is the wall
time of the pip command alone, the size that of the venv's site-packages (``du -sb``). The
installs run one after another, never two at once. The markdown report goes to stdout.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"  # the Makefile's TORCH: the CPU build
HEAVY = ("torch", "llama_cpp", "sentence_transformers", "transformers")


@dataclass(frozen=True)
class Install:
    """One measured install."""

    name: str
    command: str
    seconds: float
    size_bytes: int
    packages: int
    heavy: tuple[str, ...]  # which of HEAVY the venv can import
    largest: tuple[tuple[str, int], ...]  # the biggest folders of site-packages, bytes

    @property
    def size(self) -> str:
        return f"{self.size_bytes / 2**20:,.0f} MiB"


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def measure(name: str, requirements: list[str], folder: Path, *, no_cache: bool) -> Install:
    """A fresh venv in ``folder``, then the timed ``pip install``; the venv is removed after."""
    venv = folder / f"{name.replace(', ', '-').replace(' ', '-')}-venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", *(["--no-cache-dir"] if no_cache else [])]
    print(f"[{name}] pip install {' '.join(requirements)} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run([*pip, *requirements], check=True)
    seconds = time.perf_counter() - started
    site = _site_packages(venv)
    du = subprocess.run(["du", "-sb", str(site)], check=True, capture_output=True, text=True)
    folders = subprocess.run(
        ["du", "-sb", *map(str, site.iterdir())], check=True, capture_output=True, text=True
    )
    sizes = [
        (Path(p).name, int(n)) for n, p in (ln.split("\t", 1) for ln in folders.stdout.splitlines())
    ]
    listing = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    )
    probe = f"import importlib.util as u; print(' '.join(m for m in {HEAVY!r} if u.find_spec(m)))"
    heavy = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True)
    cli = subprocess.run(
        [str(venv / "bin" / "llm-twin"), "--help"], check=False, capture_output=True
    )
    if cli.returncode != 0:
        raise SystemExit(f"[{name}] llm-twin --help failed: {cli.stderr.decode()}")
    shutil.rmtree(venv)
    result = Install(
        name=name,
        command=f"pip install {' '.join(requirements)}" + (" --no-cache-dir" if no_cache else ""),
        seconds=seconds,
        size_bytes=int(du.stdout.split()[0]),
        packages=len(listing.stdout.splitlines()),
        heavy=tuple(heavy.stdout.split()),
        largest=tuple(sorted(sizes, key=lambda item: -item[1])[:6]),
    )
    print(f"[{name}] {result.seconds:.0f} s, {result.size}", file=sys.stderr, flush=True)
    return result


def report(installs: list[Install]) -> str:
    """The markdown table, and the thin/full ratios when both ran."""
    lines = [
        "| install | command | time | site-packages | packages | torch / llama.cpp |",
        "|---|---|---|---|---|---|",
    ]
    for i in installs:
        heavy = ", ".join(i.heavy) or "none"
        lines.append(
            f"| {i.name} | `{i.command}` | {i.seconds:.0f} s | {i.size} | {i.packages} | {heavy} |"
        )
    lines.append("")
    for i in installs:
        biggest = ", ".join(f"{name} {size / 2**20:,.0f}" for name, size in i.largest)
        lines.append(f"- {i.name}, largest folders (MiB): {biggest}")
    by_name = {i.name: i for i in installs}
    thin, full = by_name.get("thin"), by_name.get("full")
    if thin and full:
        lines += [
            "",
            f"thin / full: time {thin.seconds / full.seconds:.2f}x "
            f"({full.seconds / thin.seconds:.1f}x faster), size "
            f"{thin.size_bytes / full.size_bytes:.2f}x "
            f"({full.size_bytes / thin.size_bytes:.1f}x smaller)",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("thin", "full"), help="measure one install only")
    parser.add_argument(
        "--no-cache-dir", action="store_true", help="also the thin install with pip's cache off"
    )
    parser.add_argument("--folder", type=Path, help="where the venvs go (default: a temp dir)")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.gettempdir())  # /tmp/thin-venv, /tmp/full-venv
    folder.mkdir(parents=True, exist_ok=True)
    installs: list[Install] = []
    if args.only in (None, "thin"):
        installs.append(measure("thin", [str(ROOT)], folder, no_cache=False))
    if args.only in (None, "full"):
        installs.append(measure("full", [f"{ROOT}[all]", TORCH], folder, no_cache=False))
    if args.no_cache_dir:
        installs.append(measure("thin, no cache", [str(ROOT)], folder, no_cache=True))
    print(report(installs))


if __name__ == "__main__":
    main()

"""Benchmark every segmentation method at two label budgets on a synthetic city, plus cross-city zero-shot.

Run by hand (not a test)::

    python benchmarks/train_methods.py                      # CPU preset: ~1 h on 2 cores
    python benchmarks/train_methods.py --preset gpu         # ResNet-101, crop 256, 80 epochs, Ray Train
    python benchmarks/train_methods.py --methods supervised,unimatch --budgets 0.1 --max-iters 10
    python benchmarks/train_methods.py --preset gpu \
        --weights deeplabv3plus_resnet101=~/weights/resnet101.pth \
        --weights dinov2_vits14_dpt=~/weights/dinov2_vits14.pth   # ImageNet / DINOv2 initialisation

Steps: generate city A (``--seed-a``) and city B (``--seed-b``) with ``catalogs.synth``, build their cubes
(STAC search → ``build_cube`` → ``rasterize_labels``), make stratified splits of A with nested label
budgets, train every method at every budget on A with ``actors.method_training.train_method_from_cube``,
score each model on A's test split, and score the models of the largest budget on *every* labelled tile
of B (cross-city zero-shot). Prints one Markdown table and writes ``results.json`` / ``results.md`` next to
the outputs. Finished runs are skipped when the script is run again (delete ``runs/<name>/result.json``).

The GPU preset trains UniMatch V2 (and its SLUM-i variant) on DINOv2 ViT-S/14 + DPT with UniMatch V2's
AdamW settings, every other method on DeepLabV3+ ResNet-101 (``--model-for METHOD=MODEL`` changes this).
Nothing is downloaded: without ``--weights`` the networks start from random initialisation (logged).

CPU-preset deviations from the method defaults (to fit the time budget): every method trains for the
same ``--max-iters`` iterations (not epochs), validation runs once at the end, and ST/ST++ pseudo-labels
use test-time augmentation at scale 1.0 with flips only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from slumwatch.actors.evaluation import evaluate_checkpoint, zero_shot_evaluation
from slumwatch.actors.method_training import SUPPORTED_METHODS, DataOptions, train_method_from_cube
from slumwatch.catalogs.cube import CubeRef, GridSpec, build_cube
from slumwatch.catalogs.labels import rasterize_labels
from slumwatch.catalogs.search import search_items
from slumwatch.catalogs.splits import SplitSpec, make_splits
from slumwatch.catalogs.synth import SynthSpec, generate_city
from slumwatch.catalogs.tiling import TileSpec
from slumwatch.models.engine import ADAMW_HEAD_LR_MULTIPLIER, ADAMW_LR, ADAMW_WEIGHT_DECAY, TrainConfig

LOGGER = logging.getLogger("train_methods")

DEFAULT_OUT = Path("out/benchmarks/train_methods")
RESOLUTION_M = 0.6
SPLIT_SEED = 0
VALIDATE_AT_END = 1_000_000
"""``val_every`` so large that only the last epoch validates (the engine always validates the last one)."""
CPU_TTA = {"tta_scales": [1.0], "tta_flip": True}
RESULT_FILE = "result.json"
DINOV2_PREFIX = "dinov2"
DINOV2_OPTIMIZER: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": ADAMW_LR,
    "head_lr_multiplier": ADAMW_HEAD_LR_MULTIPLIER,
    "weight_decay": ADAMW_WEIGHT_DECAY,
}
"""UniMatch V2's optimizer for DINOv2 backbones (backbone lr 5e-6, head x40, weight decay 0.01)."""


@dataclass(frozen=True)
class Preset:
    """Sizes and training settings of one benchmark configuration."""

    size: str
    years: tuple[int, ...]
    tile: int
    model: str
    crop: int
    batch: int
    epochs: int | None
    max_iters: int | None
    lr: float
    device: str
    distributed: bool
    use_gpu: bool
    workers: int
    threads: int
    val_every: int
    checkpoint_every: int
    fast_tta: bool
    method_models: tuple[tuple[str, str], ...] = ()
    """Per-method network overrides, e.g. UniMatch V2 on DINOv2 + DPT."""

    def model_for(self, method: str) -> str:
        """The network ``method`` trains (its override, else ``model``)."""
        return dict(self.method_models).get(method, self.model)


PRESETS: dict[str, Preset] = {
    "cpu": Preset(
        size="1536x1536",
        years=(2018, 2021, 2024),
        tile=128,
        model="deeplabv3plus_resnet18",
        crop=96,
        batch=4,
        epochs=None,
        max_iters=300,
        lr=0.01,
        device="cpu",
        distributed=False,
        use_gpu=False,
        workers=1,
        threads=2,
        val_every=VALIDATE_AT_END,
        checkpoint_every=25,
        fast_tta=True,
    ),
    "gpu": Preset(
        size="2048x2048",
        years=(2016, 2018, 2020, 2022, 2024),
        tile=256,
        model="deeplabv3plus_resnet101",
        crop=256,
        batch=8,
        epochs=80,
        max_iters=None,
        lr=0.01,
        device="auto",
        distributed=True,
        use_gpu=True,
        workers=1,
        threads=8,
        val_every=5,
        checkpoint_every=5,
        fast_tta=False,
        method_models=(
            ("unimatch-v2", "dinov2_vits14_dpt"),
            ("unimatch-v2-slum-i", "dinov2_vits14_dpt"),
        ),
    ),
}
DEFAULT_METHODS = (
    "supervised",
    "fixmatch",
    "unimatch",
    "slum-i",
    "unimatch-v2",
    "st",
    "st++",
)
"""The methods of ``slumwatch train --method``; ``unimatch-v2-slum-i`` runs when named in ``--methods``."""
DEFAULT_BUDGETS = (0.03, 0.10)
DEFAULT_SEED_A = 7
DEFAULT_SEED_B = 13


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags; every preset value can be overridden."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="Output folder (default out/benchmarks/...).")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="Comma-separated methods.")
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in DEFAULT_BUDGETS))
    parser.add_argument("--seed-a", type=int, default=DEFAULT_SEED_A, help="Seed of the training city.")
    parser.add_argument("--seed-b", type=int, default=DEFAULT_SEED_B, help="Seed of the zero-shot city.")
    parser.add_argument(
        "--zero-shot", default="all", help="Methods scored zero-shot on city B ('all', 'none' or a list)."
    )
    for name, kind in (
        ("size", str),
        ("tile", int),
        ("model", str),
        ("crop", int),
        ("batch", int),
        ("epochs", int),
        ("max-iters", int),
        ("lr", float),
        ("device", str),
        ("workers", int),
        ("threads", int),
    ):
        parser.add_argument(f"--{name}", type=kind, default=None, help="Overrides the preset.")
    parser.add_argument("--years", default=None, help="Comma-separated years (overrides the preset).")
    parser.add_argument("--local", action="store_true", help="Train in-process even with the gpu preset.")
    parser.add_argument(
        "--model-for",
        action="append",
        default=[],
        metavar="METHOD=MODEL",
        help="Train METHOD with network MODEL (repeatable; overrides the preset's choice).",
    )
    parser.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="MODEL=PATH",
        help="Local pretrained weights for network MODEL (torchvision ResNet / DINOv2 .pth; repeatable).",
    )
    return parser.parse_args(argv)


def resolve_preset(args: argparse.Namespace) -> Preset:
    """The chosen preset with the command-line overrides applied."""
    preset = PRESETS[args.preset]
    overrides: dict[str, Any] = {}
    for flag, field in (
        ("size", "size"),
        ("tile", "tile"),
        ("model", "model"),
        ("crop", "crop"),
        ("batch", "batch"),
        ("epochs", "epochs"),
        ("max_iters", "max_iters"),
        ("lr", "lr"),
        ("device", "device"),
        ("workers", "workers"),
        ("threads", "threads"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    if args.years:
        overrides["years"] = tuple(int(y) for y in _csv(args.years))
    if args.local:
        overrides["distributed"] = False
    if args.model_for:
        overrides["method_models"] = (*preset.method_models, *_pairs(args.model_for, "--model-for"))
    return replace(preset, **overrides)


def _pairs(values: Sequence[str], flag: str) -> tuple[tuple[str, str], ...]:
    """``["a=b", ...]`` → ``(("a", "b"), ...)``; a value without ``=`` is a usage error."""
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise SystemExit(f"{flag} takes KEY=VALUE, got {value!r}")
        pairs.append((key.strip(), rest.strip()))
    return tuple(pairs)


def build_city_cube(*, seed: int, preset: Preset, root: Path) -> Path:
    """Synthetic city → STAC search → Zarr cube with labels (reused when present)."""
    city = root / f"city_s{seed}"
    cube = root / f"cube_s{seed}.zarr"
    if (cube / "zarr.json").is_file() and (cube / "labels").exists():
        return cube
    spec = SynthSpec.from_size(preset.size, seed=seed, years=preset.years, resolution=RESOLUTION_M)
    generate_city(spec, out=city)
    items = search_items(
        catalog=city / "catalog.json", datetime=f"{preset.years[0]}-01-01/{preset.years[-1]}-12-31"
    )
    ref = build_cube(
        items=items,
        out=cube,
        grid=GridSpec(resolution=RESOLUTION_M),
        tile=TileSpec(preset.tile),
        progress=False,
    )
    rasterize_labels(cube=ref, source=city / "labels" / "slums.parquet")
    return cube


def train_config(preset: Preset, model: str) -> TrainConfig:
    """The engine settings of a run: SGD for the CNNs; UniMatch V2's AdamW for DINOv2 networks."""
    config = TrainConfig(
        epochs=preset.epochs,
        max_iters=preset.max_iters,
        batch_size=preset.batch,
        lr=preset.lr,
        device=preset.device,  # type: ignore[arg-type]
        val_every=preset.val_every,
        checkpoint_every=preset.checkpoint_every,
        seed=0,
    )
    if model.startswith(DINOV2_PREFIX):
        config = replace(config, **DINOV2_OPTIMIZER)
    return config


def run_one(
    *,
    method: str,
    budget: float,
    preset: Preset,
    cube: Path,
    splits: Path,
    run_dir: Path,
    weights: dict[str, Path],
) -> dict[str, Any]:
    """Train one method at one budget and score it on the test split (cached in ``result.json``)."""
    done = run_dir / RESULT_FILE
    if done.is_file():
        LOGGER.info("%s @ %g: reusing %s", method, budget, done)
        cached: dict[str, Any] = json.loads(done.read_text(encoding="utf-8"))
        return cached
    kwargs: dict[str, Any] = CPU_TTA if preset.fast_tta and method in ("st", "st++") else {}
    model = preset.model_for(method)
    model_kwargs = {"weights": weights[model]} if model in weights else {}
    start = time.perf_counter()
    result = train_method_from_cube(
        cube=cube,
        splits=splits,
        method=method,
        budget=budget,
        model_name=model,
        model_kwargs=model_kwargs,
        train_config=train_config(preset, model),
        run_dir=run_dir,
        num_workers=preset.workers,
        use_gpu=preset.use_gpu,
        method_kwargs=kwargs,
        distributed=preset.distributed,
        data=DataOptions(crop_size=preset.crop),
    )
    train_s = time.perf_counter() - start
    metrics = evaluate_checkpoint(
        checkpoint=result.checkpoint, cube=cube, splits=splits, split="test", device=preset.device
    )
    record = {
        "method": method,
        "budget": budget,
        "model": model,
        "weights": str(weights[model]) if model in weights else None,
        "checkpoint": str(result.checkpoint),
        "train_time_s": round(train_s, 1),
        "samples": dict(result.samples),
        "test": {k: metrics[k] for k in ("miou", "iou_per_class", "mean_f1", "pixel_accuracy", "num_pixels")},
        "best_val_miou": result.best_miou,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown table: method, budget, mIoU, per-class IoU, wall time."""
    lines = [
        "| method | network | budget | eval on | labelled tile-years | mIoU | IoU non-slum | IoU slum "
        "| time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        iou = row["scores"]["iou_per_class"]
        lines.append(
            f"| {row['method']} | {row['model']} | {row['budget']:g} | {row['eval_on']} | "
            f"{row['labelled']} | "
            f"{_fmt(row['scores']['miou'])} | {_fmt(iou.get('non-slum'))} | {_fmt(iou.get('slum'))} | "
            f"{row['time_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    preset = resolve_preset(args)
    methods = _csv(args.methods)
    unknown = [m for m in methods if m not in SUPPORTED_METHODS]
    if unknown:
        print(f"unknown methods {unknown}; supported: {', '.join(SUPPORTED_METHODS)}", file=sys.stderr)
        return 2
    budgets = sorted(float(b) for b in _csv(args.budgets))
    zero_shot = (
        methods if args.zero_shot == "all" else [] if args.zero_shot == "none" else _csv(args.zero_shot)
    )
    weights = {name: Path(path).expanduser().resolve() for name, path in _pairs(args.weights, "--weights")}
    missing = [str(p) for p in weights.values() if not p.is_file()]
    if missing:
        print(f"weights files not found: {missing}", file=sys.stderr)
        return 2
    unpretrained = sorted({preset.model_for(m) for m in methods} - set(weights))
    if unpretrained:
        LOGGER.info("networks trained from random initialisation (no --weights): %s", unpretrained)
    torch.set_num_threads(preset.threads)
    out = (args.out or DEFAULT_OUT / args.preset).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cube_a = build_city_cube(seed=args.seed_a, preset=preset, root=out)
    cube_b = build_city_cube(seed=args.seed_b, preset=preset, root=out) if zero_shot else None
    splits = make_splits(cube=CubeRef(path=cube_a), spec=SplitSpec(seed=SPLIT_SEED, fractions=tuple(budgets)))
    splits_path = splits.save(out / "splits_a.json")
    data_s = time.perf_counter() - t0
    LOGGER.info("cities and cubes ready in %.0f s; %d train tiles", data_s, len(splits.train))

    rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for budget in budgets:
        for method in methods:
            run_dir = out / "runs" / f"{method}_{budget:g}"
            record = run_one(
                method=method,
                budget=budget,
                preset=preset,
                cube=cube_a,
                splits=splits_path,
                run_dir=run_dir,
                weights=weights,
            )
            records.append(record)
            rows.append(
                {
                    "method": method,
                    "model": record.get("model", preset.model_for(method)),
                    "budget": budget,
                    "eval_on": f"A test (s{args.seed_a})",
                    "labelled": record["samples"]["labelled"],
                    "scores": record["test"],
                    "time_s": record["train_time_s"],
                }
            )
            print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    if cube_b is not None:
        for record in records:
            if record["budget"] != budgets[-1] or record["method"] not in zero_shot:
                continue
            start = time.perf_counter()
            scores = zero_shot_evaluation(
                checkpoint=Path(record["checkpoint"]), target_cube=cube_b, device=preset.device
            )
            record["zero_shot"] = {
                k: scores[k] for k in ("miou", "iou_per_class", "num_pixels", "target_city")
            }
            rows.append(
                {
                    "method": f"{record['method']} (zero-shot A→B)",
                    "model": record.get("model", preset.model_for(record["method"])),
                    "budget": record["budget"],
                    "eval_on": f"B all tiles (s{args.seed_b})",
                    "labelled": record["samples"]["labelled"],
                    "scores": scores,
                    "time_s": time.perf_counter() - start,
                }
            )
    table = markdown_table(rows)
    total_s = time.perf_counter() - t0
    header = (
        f"preset {args.preset}: {asdict(preset)}; city A seed {args.seed_a}, city B seed {args.seed_b}; "
        f"{len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test tiles; "
        f"data {data_s:.0f} s, total {total_s:.0f} s"
    )
    print()
    print(header)
    print()
    print(table)
    payload = {
        "preset": args.preset,
        "settings": asdict(preset),
        "seed_a": args.seed_a,
        "seed_b": args.seed_b,
        "splits": str(splits_path),
        "split_sha256": splits.sha256,
        "data_time_s": round(data_s, 1),
        "total_time_s": round(total_s, 1),
        "runs": records,
        "table_markdown": table,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    (out / "results.md").write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    print(f"\nresults: {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

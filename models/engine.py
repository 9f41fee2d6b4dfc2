"""THE training loop of slumwatch: one engine for every method (supervised and semi-supervised).

The engine owns everything that is not method-specific: device choice (once), seeding, optimizer with
backbone/head parameter groups, poly learning rate, AMP + GradScaler on CUDA, gradient accumulation,
periodic validation (confusion-matrix mIoU, optional sliding window), ``latest.pt`` every epoch and
``best.pt`` by validation mIoU, and automatic resume from ``latest.pt``. A method is a step object
(:class:`slumwatch.models.methods.base.MethodStep`) that turns one merged batch into a loss.

Iterations and epochs: one iteration is one batch; an epoch is one pass over the *driver* loader — the
unlabeled loader when the step needs unlabeled data (the labeled loader is cycled, as in UniMatch), the
labeled loader otherwise. The optimizer steps every ``grad_accum_steps`` iterations and at the end of
each epoch, so checkpoints never hold half-accumulated gradients.

Reproducibility: every RNG (python, numpy, torch, CUDA) is re-seeded at the start of each epoch from
``(seed, epoch, rank)``, and :class:`~slumwatch.models.data.TileDataset` draws its augmentation from
``(seed, epoch, index)``; a run resumed from ``latest.pt`` therefore reproduces the uninterrupted run's
losses exactly (on CPU, deterministic algorithms). Distributed runs (DDP, e.g. under Ray Train) pass
``wrap_model`` and run the same loop; only rank 0 writes checkpoints, confusion matrices are all-reduced.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import slumwatch
from slumwatch.models.base import SegmentationModel
from slumwatch.models.checkpoint import read_checkpoint, save_checkpoint
from slumwatch.models.errors import CheckpointError
from slumwatch.models.inference import Blend, predict_proba, sliding_window_proba
from slumwatch.models.methods.base import MethodStep, StepOutput, merge_batches
from slumwatch.models.metrics import IGNORE_INDEX, ConfusionMatrix, SegmentationScores

LOGGER = logging.getLogger(__name__)

LATEST_NAME = "latest.pt"
BEST_NAME = "best.pt"
KEPT_DIR = "checkpoints"
"""Sub-folder of the run holding the ``keep_epochs`` snapshots."""
SGD_HEAD_LR_MULTIPLIER = 10.0
ADAMW_HEAD_LR_MULTIPLIER = 40.0
ADAMW_LR = 5e-6
"""UniMatch V2's backbone learning rate for DINOv2 with AdamW."""
ADAMW_WEIGHT_DECAY = 0.01
DEFAULT_LR = 0.01
DEFAULT_MOMENTUM = 0.9
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_POLY_POWER = 0.9
DEFAULT_EVAL_OVERLAP = 0.5
SEED_MODULUS = 2**32
AMP_DTYPE = torch.float16

OptimizerName = Literal["sgd", "adamw"]
DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (one frozen object, stored in every checkpoint's metadata).

    Give ``epochs`` or ``max_iters`` (if both, ``max_iters`` caps the run). ``head_lr_multiplier`` is 10
    for SGD ResNet (ST++/UniMatch) and 40 for AdamW DINOv2 (UniMatch-V2). ``amp`` takes effect only on CUDA.
    ``val_every`` counts epochs. ``checkpoint_every`` (epochs) spaces the ``latest.pt`` writes: the last epoch
    is always written, and a resumed run restarts from the last written one (raise it when epochs are a
    few iterations long: a DeepLabV3+ checkpoint with optimizer state is 0.1-0.5 GB). ``eval_window``
    switches validation to sliding-window inference.
    """

    epochs: int | None = None
    max_iters: int | None = None
    batch_size: int = 8
    lr: float = DEFAULT_LR
    head_lr_multiplier: float = SGD_HEAD_LR_MULTIPLIER
    optimizer: OptimizerName = "sgd"
    momentum: float = DEFAULT_MOMENTUM
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    poly_power: float = DEFAULT_POLY_POWER
    amp: bool = True
    grad_accum_steps: int = 1
    clip_grad_norm: float | None = None
    seed: int = 0
    deterministic: bool = True
    val_every: int = 1
    checkpoint_every: int = 1
    eval_window: int | None = None
    eval_overlap: float = DEFAULT_EVAL_OVERLAP
    eval_batch_size: int = 4
    eval_blend: Blend = "gaussian"
    eval_tta_flip: bool = False
    device: DeviceName = "auto"
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.epochs is None and self.max_iters is None:
            raise ValueError("TrainConfig needs epochs or max_iters")
        for name in ("epochs", "max_iters"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if min(self.grad_accum_steps, self.val_every, self.checkpoint_every, self.batch_size) < 1:
            raise ValueError("grad_accum_steps, val_every, checkpoint_every and batch_size must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return asdict(self)


@dataclass(frozen=True)
class EpochReport:
    """What the engine reports after each epoch (to ``on_epoch_end``, e.g. Ray Train's ``report``)."""

    epoch: int
    iteration: int
    metrics: Mapping[str, Any]
    latest_path: Path | None  # written this epoch; None on other ranks and epochs without a write
    best_path: Path | None
    is_best: bool


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :meth:`Engine.fit`."""

    run_dir: Path
    best_miou: float | None
    best_epoch: int | None
    history: tuple[Mapping[str, Any], ...]
    latest_path: Path | None
    best_path: Path | None
    iterations: int
    total_iters: int
    resumed_from_epoch: int | None
    losses: tuple[tuple[int, float], ...] = field(default=())  # (iteration, loss) of this call's steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without per-iteration losses)."""
        return {
            "run_dir": str(self.run_dir),
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "history": list(self.history),
            "latest_path": None if self.latest_path is None else str(self.latest_path),
            "best_path": None if self.best_path is None else str(self.best_path),
            "iterations": self.iterations,
            "total_iters": self.total_iters,
            "resumed_from_epoch": self.resumed_from_epoch,
        }


def resolve_device(name: DeviceName) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU raises."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but CUDA is not available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of ``batch`` (nested dict/list/tuple) to ``device``; other values unchanged."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def derive_seed(*parts: int) -> int:
    """Stable 32-bit seed from integers (crc32 of their text)."""
    return zlib.crc32(",".join(str(p) for p in parts).encode()) % SEED_MODULUS


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % SEED_MODULUS)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Current python/numpy/torch(/CUDA) RNG states, checkpoint-safe."""
    np_state = np.random.get_state(legacy=False)
    np_plain = dict(np_state)
    np_plain["state"] = {
        k: torch.from_numpy(np.asarray(v).astype(np.int64)) if isinstance(v, np.ndarray) else v
        for k, v in dict(np_state["state"]).items()
    }
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np_plain,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`rng_state` output."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    np_state = dict(state["numpy"])
    np_state["state"] = {
        k: np.asarray(v.numpy(), dtype=np.uint32) if isinstance(v, Tensor) else v
        for k, v in dict(np_state["state"]).items()
    }
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def poly_lr(base_lr: float, iteration: int, total_iters: int, power: float) -> float:
    """``base_lr * (1 - iteration / total_iters) ** power``."""
    return base_lr * (1.0 - min(iteration, total_iters) / total_iters) ** power


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _set_epoch(loader: DataLoader[Any] | None, epoch: int) -> None:
    if loader is None:
        return
    for obj in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None), loader.dataset):
        setter = getattr(obj, "set_epoch", None)
        if callable(setter):
            setter(epoch)


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("a training loader yielded no batch")


def build_optimizer(model: SegmentationModel, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or AdamW over ``model.param_groups(lr, head_lr_multiplier)``."""
    groups = model.param_groups(config.lr, config.head_lr_multiplier)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


class Engine:
    """Train ``model`` with ``step`` on the given loaders; see the module docstring.

    Args:
        config: hyper-parameters.
        model: an unwrapped :class:`SegmentationModel` (built by the registry, so it knows its name/kwargs).
        step: the method's step object.
        run_dir: where ``latest.pt`` / ``best.pt`` go; an existing ``latest.pt`` is resumed from.
        train_loader: labeled batches ``{"image": (B,C,H,W), "label": (B,H,W)}``.
        val_loader: validation batches (same keys); enables ``best.pt``.
        unlabeled_loader: unlabeled batches, merged with ``u_`` prefixes when ``step.needs_unlabeled``.
        progress: show a tqdm bar (rank 0 only).
        normalization: input normalisation stored in checkpoints (e.g. ``{"low": [...], "high": [...]}``).
        metadata: extra metadata stored in checkpoints.
        split_hash: hash of the label split, stored in checkpoints.
        wrap_model: applied once after moving the model to the device (e.g. Ray's ``prepare_model``).
        device: explicit device (overrides ``config.device``; Ray workers pass their assigned device).
        resume: resume from ``run_dir/latest.pt`` (or ``resume_from``) when it exists.
        resume_from: a specific checkpoint to resume from.
        on_epoch_end: callback run on every rank after each epoch's checkpoint.
        keep_epochs: epochs whose checkpoint is also kept as ``run_dir/checkpoints/epoch_XXXX.pt`` (written
            whatever ``checkpoint_every`` says; ST++ ranks stability with them).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: SegmentationModel,
        step: MethodStep,
        run_dir: Path,
        train_loader: DataLoader[Any],
        val_loader: DataLoader[Any] | None = None,
        unlabeled_loader: DataLoader[Any] | None = None,
        progress: bool = True,
        normalization: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        split_hash: str | None = None,
        wrap_model: Callable[[nn.Module], nn.Module] | None = None,
        device: torch.device | None = None,
        resume: bool = True,
        resume_from: Path | None = None,
        on_epoch_end: Callable[[EpochReport], None] | None = None,
        keep_epochs: Collection[int] = (),
    ) -> None:
        if step.needs_unlabeled and unlabeled_loader is None:
            raise ValueError(f"method {step.name!r} needs an unlabeled_loader")
        if model.model_name is None:
            raise ValueError("model must come from slumwatch.models.get_model (it has no model_name)")
        self.config = config
        self.model = model
        self.step = step
        self.run_dir = Path(run_dir)
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.unlabeled_loader = unlabeled_loader if step.needs_unlabeled else None
        self.progress = progress
        self.normalization = dict(normalization or {})
        self.metadata = dict(metadata or {})
        self.split_hash = split_hash
        self.wrap_model = wrap_model
        self.device = device if device is not None else resolve_device(config.device)
        self.resume = resume
        self.resume_from = None if resume_from is None else Path(resume_from)
        self.on_epoch_end = on_epoch_end
        self.keep_epochs = frozenset(int(e) for e in keep_epochs)
        self.rank, self.world_size = _dist_info()
        self.is_main = self.rank == 0
        self.use_amp = config.amp and self.device.type == "cuda"
        driver = self.unlabeled_loader if self.unlabeled_loader is not None else train_loader
        self.iters_per_epoch = len(driver)
        if self.iters_per_epoch < 1:
            raise ValueError("the driving loader is empty")
        if config.max_iters is not None:
            self.total_iters = config.max_iters
            if config.epochs is not None:
                self.total_iters = min(self.total_iters, config.epochs * self.iters_per_epoch)
        else:
            assert config.epochs is not None
            self.total_iters = config.epochs * self.iters_per_epoch
        self.num_epochs = math.ceil(self.total_iters / self.iters_per_epoch)
        self.latest_path = self.run_dir / LATEST_NAME
        self.best_path = self.run_dir / BEST_NAME
        self.kept_dir = self.run_dir / KEPT_DIR
        # filled by fit()
        self.train_model: nn.Module = model
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None

    # ------------------------------------------------------------------ setup
    def _configure_determinism(self) -> None:
        if not self.config.deterministic:
            return
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False

    def _seed_epoch(self, epoch: int) -> None:
        seed_everything(derive_seed(self.config.seed, epoch, self.rank))

    def _metadata(self, metrics: Mapping[str, Any], epoch: int, iteration: int) -> dict[str, Any]:
        return {
            **self.metadata,
            "method": self.step.name,
            "config": self.config.to_dict(),
            "split_hash": self.split_hash,
            "metrics": dict(metrics),
            "code_version": slumwatch.__version__,
            "epoch": epoch,
            "iteration": iteration,
            "world_size": self.world_size,
        }

    def kept_path(self, epoch: int) -> Path:
        """Where the ``keep_epochs`` snapshot of ``epoch`` goes."""
        return self.kept_dir / f"epoch_{epoch:04d}.pt"

    def _save(
        self,
        path: Path,
        *,
        epoch: int,
        iteration: int,
        metrics: Mapping[str, Any],
        best: tuple[float | None, int | None],
        history: list[dict[str, Any]],
    ) -> Path:
        assert self.optimizer is not None and self.scaler is not None
        return save_checkpoint(
            path,
            model=self.model,
            model_name=str(self.model.model_name),
            model_kwargs=self.model.model_kwargs,
            normalization=self.normalization,
            metadata=self._metadata(metrics, epoch, iteration),
            optimizer=self.optimizer,
            scheduler_state={
                "kind": "poly",
                "power": self.config.poly_power,
                "total_iters": self.total_iters,
                "iteration": iteration,
            },
            step_state=self.step.state_dict(),
            extra_state={
                "epoch": epoch,
                "iteration": iteration,
                "scaler": self.scaler.state_dict(),
                "rng": rng_state(),
                "best_miou": best[0],
                "best_epoch": best[1],
                "history": history,
            },
        )

    def _load_resume(self) -> dict[str, Any] | None:
        path = self.resume_from if self.resume_from is not None else self.latest_path
        if not self.resume or not path.is_file():
            return None
        raw = read_checkpoint(path, map_location=self.device)
        extra = raw.get("extra_state")
        if not isinstance(extra, Mapping) or raw.get("optimizer_state") is None:
            raise CheckpointError(f"checkpoint {path} holds no training state to resume from")
        if raw["model_name"] != self.model.model_name:
            raise CheckpointError(
                f"checkpoint {path} is for model {raw['model_name']!r}, not {self.model.model_name!r}"
            )
        stored = raw.get("metadata", {}).get("config")
        if stored is not None and stored != self.config.to_dict():
            LOGGER.warning("resuming %s with a config that differs from the stored one", path)
        try:
            self.model.load_state_dict(raw["model_state"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint {path} does not fit the model: {exc}") from exc
        assert self.optimizer is not None and self.scaler is not None
        self.optimizer.load_state_dict(raw["optimizer_state"])
        self.scaler.load_state_dict(extra["scaler"])
        self.step.load_state_dict(raw.get("step_state") or {})
        set_rng_state(extra["rng"])
        LOGGER.info("resumed from %s (epoch %d, iteration %d)", path, extra["epoch"], extra["iteration"])
        return dict(extra)

    # ------------------------------------------------------------------ loop pieces
    def _set_lr(self, iteration: int) -> float:
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = poly_lr(group["base_lr"], iteration, self.total_iters, self.config.poly_power)
        return float(self.optimizer.param_groups[0]["lr"])

    def _optimizer_step(self, iteration: int) -> None:
        assert self.optimizer is not None and self.scaler is not None
        if self.config.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step.after_optimizer_step(self.train_model_for_step, iteration=iteration)

    @property
    def train_model_for_step(self) -> SegmentationModel:
        """The model handed to the step object: the DDP wrapper in distributed runs (typed loosely)."""
        return self.train_model  # type: ignore[return-value]

    def _batches(self) -> Iterator[dict[str, Any]]:
        if self.unlabeled_loader is None:
            yield from self.train_loader
            return
        labeled = _cycle(self.train_loader)
        for unlabeled in self.unlabeled_loader:
            yield merge_batches(next(labeled), unlabeled)

    def _train_step(self, batch: Mapping[str, Any], iteration: int) -> StepOutput:
        with torch.autocast(device_type=self.device.type, dtype=AMP_DTYPE, enabled=self.use_amp):
            output = self.step.training_step(
                self.train_model_for_step, batch, iteration=iteration, total_iters=self.total_iters
            )
        if output.loss.ndim != 0:
            raise ValueError(f"step {self.step.name!r} returned a non-scalar loss {tuple(output.loss.shape)}")
        assert self.scaler is not None
        self.scaler.scale(output.loss.float() / self.config.grad_accum_steps).backward()
        return output

    def evaluate(self, loader: DataLoader[Any] | None = None) -> SegmentationScores:
        """Confusion-matrix scores of the model on ``loader`` (default: the validation loader).

        Batches ``{"image": (B,C,H,W), "label": (B,H,W)}``; in distributed runs counts are all-reduced.
        """
        loader = loader if loader is not None else self.val_loader
        if loader is None:
            raise ValueError("no validation loader")
        config = self.config
        matrix = ConfusionMatrix(self.model.num_classes, ignore_index=IGNORE_INDEX)
        for batch in loader:
            images = batch["image"].to(self.device)
            if config.eval_window is not None:
                probs = sliding_window_proba(
                    self.model,
                    images,
                    window=config.eval_window,
                    overlap=config.eval_overlap,
                    batch_size=config.eval_batch_size,
                    blend=config.eval_blend,
                    tta_flip=config.eval_tta_flip,
                )
            else:
                probs = predict_proba(self.model, images, tta_flip=config.eval_tta_flip)
            matrix.update(probs.argmax(dim=1), batch["label"])
        if self.world_size > 1:
            counts = matrix.matrix.to(self.device)
            dist.all_reduce(counts)
            matrix.matrix = counts.cpu()
        return matrix.compute()

    # ------------------------------------------------------------------ fit
    def fit(self) -> TrainResult:
        """Train to ``total_iters`` (resuming if possible); returns the best mIoU, history and paths."""
        config = self.config
        self._configure_determinism()
        self.model.to(self.device)
        self.optimizer = build_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        resumed = self._load_resume()
        start_epoch = int(resumed["epoch"]) if resumed else 0
        iteration = int(resumed["iteration"]) if resumed else 0
        best_miou: float | None = resumed["best_miou"] if resumed else None
        best_epoch: int | None = resumed["best_epoch"] if resumed else None
        history: list[dict[str, Any]] = list(resumed["history"]) if resumed else []
        self.train_model = self.wrap_model(self.model) if self.wrap_model is not None else self.model
        self.train_model.train()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        losses: list[tuple[int, float]] = []
        bar = tqdm(
            total=self.total_iters,
            initial=iteration,
            disable=not (self.progress and self.is_main),
            desc=f"{self.step.name}",
            dynamic_ncols=True,
        )
        latest: Path | None = self.latest_path if (resumed and self.is_main) else None
        best_file: Path | None = self.best_path if (best_epoch is not None and self.is_main) else None
        try:
            for epoch in range(start_epoch, self.num_epochs):
                if iteration >= self.total_iters:
                    break
                self._seed_epoch(epoch)
                for loader in (self.train_loader, self.unlabeled_loader):
                    _set_epoch(loader, epoch)
                assert self.optimizer is not None
                self.optimizer.zero_grad(set_to_none=True)
                sums: dict[str, float] = defaultdict(float)
                count = 0
                pending = 0
                lr = self._set_lr(iteration)
                for batch in self._batches():
                    lr = self._set_lr(iteration)
                    output = self._train_step(to_device(batch, self.device), iteration)
                    loss_value = float(output.loss.detach())
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(f"non-finite loss {loss_value} at iteration {iteration}")
                    losses.append((iteration, loss_value))
                    sums["loss"] += loss_value
                    for key, value in output.logs.items():
                        sums[key] += float(value)
                    count += 1
                    pending += 1
                    if pending == config.grad_accum_steps:
                        self._optimizer_step(iteration)
                        pending = 0
                    iteration += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", epoch=epoch)
                    if iteration >= self.total_iters:
                        break
                if pending:
                    self._optimizer_step(iteration - 1)
                record: dict[str, Any] = {"epoch": epoch + 1, "iteration": iteration, "lr": lr}
                record.update({key: value / max(count, 1) for key, value in sums.items()})
                is_best = False
                last_epoch = iteration >= self.total_iters
                if self.val_loader is not None and ((epoch + 1) % config.val_every == 0 or last_epoch):
                    scores = self.evaluate()
                    self.train_model.train()
                    record["val"] = scores.to_dict()
                    record["miou"] = scores.miou
                    if not math.isnan(scores.miou) and (best_miou is None or scores.miou > best_miou):
                        best_miou, best_epoch, is_best = scores.miou, epoch + 1, True
                history.append(record)
                LOGGER.info(
                    "epoch %d/%d: %s",
                    epoch + 1,
                    self.num_epochs,
                    {k: v for k, v in record.items() if k != "val"},
                )
                metrics = {**{k: v for k, v in record.items() if k != "val"}, "best_miou": best_miou}
                written: Path | None = None
                kept = (epoch + 1) in self.keep_epochs
                save = partial(
                    self._save,
                    epoch=epoch + 1,
                    iteration=iteration,
                    metrics=metrics,
                    best=(best_miou, best_epoch),
                    history=history,
                )
                if self.is_main and (last_epoch or kept or (epoch + 1) % config.checkpoint_every == 0):
                    latest = written = save(self.latest_path)
                    if kept:
                        self.kept_dir.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(written, self.kept_path(epoch + 1))
                if self.is_main and is_best:
                    best_file = save(self.best_path)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(
                        EpochReport(
                            epoch=epoch + 1,
                            iteration=iteration,
                            metrics=metrics,
                            latest_path=written,
                            best_path=best_file,
                            is_best=is_best,
                        )
                    )
        finally:
            bar.close()
        return TrainResult(
            run_dir=self.run_dir,
            best_miou=best_miou,
            best_epoch=best_epoch,
            history=tuple(history),
            latest_path=latest,
            best_path=best_file,
            iterations=iteration,
            total_iters=self.total_iters,
            resumed_from_epoch=start_epoch if resumed else None,
            losses=tuple(losses),
        )


__all__ = [
    "BEST_NAME",
    "LATEST_NAME",
    "Engine",
    "EpochReport",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "derive_seed",
    "poly_lr",
    "resolve_device",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "to_device",
]

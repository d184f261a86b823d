"""The training loop: AdamW with warm-up and linear decay, length-bucketed batches with dynamic
padding, dev F1 every epoch with early stopping, atomic checkpoints and an exact ``resume``.

:func:`train` reads the data, builds the model (:mod:`gpner.training.build`), opens the run
directory (:mod:`gpner.training.rundir`, which also decides what a directory may hold) and
hands them to a :class:`Trainer`, whose ``train_step`` is one optimizer step with the configured
regularisers. Where the rest lives: examples and batches in :mod:`gpner.training.examples`,
the loop's counters in :mod:`gpner.training.state`, checkpoints in
:mod:`gpner.training.checkpoint`, the regularisers in :mod:`gpner.training.regularizers`, the
schedule in :mod:`gpner.training.optim`, process groups in :mod:`gpner.training.distributed`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from gpner.contracts import Featurizer, Task
from gpner.errors import ArgumentTypeError, RunDirError
from gpner.model.artifact import ModelConfig
from gpner.model.losses import flood
from gpner.model.network import TaskModel, to_device, unwrap
from gpner.prediction.backends import TorchBackend
from gpner.prediction.predictor import Predictor
from gpner.records import Record, Report
from gpner.training.build import build, resolve_task
from gpner.training.checkpoint import load_checkpoint
from gpner.training.config import TrainConfig
from gpner.training.distributed import (
    all_true,
    backend,
    barrier,
    gather,
    refuse_under_ddp,
    setup,
    share,
)
from gpner.training.examples import (
    Collator,
    Example,
    has_overlaps,
    length_buckets,
    make_examples,
    max_span_width,
    read_data,
)
from gpner.training.optim import adamw, fit_schedule, lr_factor, param_groups
from gpner.training.regularizers import (
    EMA,
    FGM,
    PGD,
    penalised_loss,
    rdrop_loss,
    vat_loss,
)
from gpner.training.rundir import (
    RunDir,
    check_output,
    is_main_process,
    restore_previous,
    resume_settings,
    set_aside,
)
from gpner.training.state import TrainState
from gpner.training.tracking import Tracking

log = logging.getLogger("gpner")


def clock() -> float:
    """Seconds on a clock that only goes forward: what ``max_minutes`` and ``elapsed`` count
    (the tests put a clock of their own here)."""
    return time.monotonic()


Data = str | Path | Sequence[Record]


def train(train_data: Data | None, dev_data: Data | None, output: str | Path,
          cfg: TrainConfig | None = None, resume: bool = False, progress: bool = True,
          on_step: Callable[[int, float], None] | None = None, overwrite: bool = False,
          encoding: str | None = None, on_epoch: Callable[[dict], bool] | None = None) -> dict:
    """Train a model into the run directory ``output``; return the summary (also summary.json).

    ``resume=True`` continues from ``output/last`` and reaches the same weights as a run that was
    never interrupted; a ``cfg`` that differs from the run's saved one is refused (E403).
    Without it, an ``output`` that holds a run is refused (E401) unless ``overwrite``, which
    removes that run's files once the new run has its data and model, so the two never mix.
    ``encoding``: of the data files (default UTF-8). ``on_step(step, loss)`` is called after
    every optimizer step; ``on_epoch(row)`` after each epoch with its ``metrics.jsonl`` row, and
    a True return ends training there like early stopping (``gpner tune``'s pruner).
    """
    output = Path(output)
    if cfg is not None and not isinstance(cfg, TrainConfig):
        raise ArgumentTypeError(f"cfg should be a TrainConfig (gpner.config.load_config), got "
                                f"{type(cfg).__name__}")
    if resume:
        cfg, train_data, dev_data, encoding = _resumed(output, cfg, train_data, dev_data,
                                                       encoding)
    else:
        check_output(output, overwrite)  # refused at once, before any data is read
    cfg = cfg or TrainConfig()
    cfg.validate()
    if train_data is None:
        raise ArgumentTypeError("training data should be a path or a list of records, got "
                                "NoneType")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = setup()  # torchrun's group, or one process
    if world > 1:
        refuse_under_ddp(cfg)
    if rank:  # one process reports: the others only warn
        log.setLevel(max(log.level, logging.WARNING))
    torch.manual_seed(cfg.seed)
    started = clock()

    train_records, train_report = read_data(train_data, encoding)
    dev_records, dev_report = read_data(dev_data, encoding) if dev_data is not None \
        else ([], None)
    cfg = resolve_task(cfg, train_records)
    # the teachers score the texts before the student's vocabulary is built
    distill, unlabeled = _teachers(cfg, output, encoding, resume, train_records,
                                   progress and rank == 0)
    model, featurizer, task, config = build(cfg, [*train_records, *unlabeled])
    model.to(device)
    examples = _examples(cfg, train_records, featurizer, task, config, train_report, dev_report)
    if distill is not None:
        _distilled(distill, examples, train_records, unlabeled, featurizer, config, cfg)

    run = RunDir(output, main=is_main_process())
    if not resume and overwrite and run.main:
        # only now, with the data read and the model built, is the old run set aside; it is
        # removed once this run has a model, and put back if this run fails before one
        set_aside(output)
    try:
        if distill is not None and run.main:
            distill.save(len(train_records))
        return _run(cfg, model, task, featurizer, config, examples, dev_records, run, device,
                    started, rank, world, train_data, dev_data, encoding, resume, progress,
                    on_step, on_epoch)
    except BaseException:
        if run.main and not resume:
            restore_previous(output)
        raise


def _run(cfg: TrainConfig, model: TaskModel, task: Task, featurizer: Featurizer,
         config: ModelConfig, examples: list[Example], dev_records: list[Record], run: RunDir,
         device: torch.device, started: float, rank: int, world: int, train_data: Data,
         dev_data: Data | None, encoding: str | None, resume: bool, progress: bool,
         on_step: Callable[[int, float], None] | None,
         on_epoch: Callable[[dict], bool] | None = None) -> dict:
    """The run once its data and model are ready: the setup files, the loop, the summary."""
    paths = {k: str(Path(v).resolve()) for k, v in (("train", train_data), ("dev", dev_data))
             if isinstance(v, (str, Path))}
    run.write_setup(cfg.to_dict(), {**paths, **({"encoding": encoding} if encoding else {})})
    trainer = Trainer(cfg, _wrapped(model, cfg, world, device), task, featurizer, config,
                      examples, dev_records, run, device, started, rank=rank, world=world)
    if resume:
        trainer.resume()
    if run.main:  # one process tracks; a missing tracker package is refused here, before a step
        trainer.tracking = Tracking.open(cfg.to_dict(), run.path, paths,
                                         trainer.state.step if resume else None)
    trainer.on_epoch = on_epoch
    trainer.fit(progress and rank == 0, on_step)
    summary = trainer.finish()
    barrier()  # rank 0 has written the model and summary before anyone leaves
    return summary


def _resumed(output: Path, cfg: TrainConfig | None, train_data: Data | None,
             dev_data: Data | None, encoding: str | None
             ) -> tuple[TrainConfig, Data, Data | None, str | None]:
    """The saved run's settings, data and encoding; a ``cfg`` that differs is refused."""
    saved, train_data, dev_data, saved_encoding = resume_settings(output, train_data, dev_data)
    if cfg is not None and cfg.to_dict() != saved.to_dict():
        changed = sorted(k for k, v in cfg.to_dict().items() if saved.to_dict()[k] != v)
        raise RunDirError(f"{output}: resume continues the run with its saved settings "
                          f"(config.yaml); these differ and would be ignored: "
                          f"{', '.join(f'{k}={getattr(cfg, k)!r}' for k in changed)}. "
                          "Resume without them, or start a new run", code="E403")
    return saved, train_data, dev_data, encoding or saved_encoding


def _examples(cfg: TrainConfig, records: list[Record], featurizer: Featurizer, task: Task,
              config: ModelConfig, train_report: Report, dev_report: Report | None
              ) -> list[Example]:
    """The training windows; the decoding defaults that the data decides, and what the readers
    and the alignment skipped, go into ``config``."""
    align_report = Report(f"{train_report.source} (tokens)")
    examples = make_examples(records, featurizer, config.labels, config.max_length,
                             align_report, cfg.misaligned, flat_only=not task.span_head,
                             stride=cfg.stride, relations=config.relations)
    if config.decode.flat is None:  # a triple needs both its entities: relations decode nested
        config.decode.flat = not task.has_relations and not has_overlaps(records)
    if config.decode.max_width is None and task.span_head:
        config.decode.max_width = max_span_width(examples)
    config.data = {"train": train_report.as_dict(), "train_alignment": align_report.as_dict(),
                   "dev": dev_report.as_dict() if dev_report else None}
    for rep in (train_report, align_report, dev_report):
        if rep is not None:
            (log.warning if rep.total_skipped else log.info)(rep.summary())
    return examples


def _teachers(cfg: TrainConfig, output: Path, encoding: str | None, resume: bool,
              records: list[Record], progress: bool) -> tuple[Any, list[Record]]:
    """The run's distillation (None without ``teachers``) and its unlabeled texts as records."""
    if not cfg.teachers:
        return None, []
    from gpner.training.distill import Distillation

    distill = Distillation(cfg, output, encoding, resume)
    return distill, distill.prepare(records, progress)


def _distilled(distill: Any, examples: list[Example], records: list[Record],
               unlabeled: list[Record], featurizer: Featurizer, config: ModelConfig,
               cfg: TrainConfig) -> None:
    """Add the unlabeled texts' windows (no gold) to ``examples`` and give every window its
    teachers' targets; what could not be carried is counted in the model's data report."""
    from gpner.training.distill import attach

    first = len(examples)
    extra = make_examples(unlabeled, featurizer, config.labels, config.max_length,
                          Report("<unlabeled>"), cfg.misaligned, stride=cfg.stride)
    for ex in extra:
        ex.doc += len(records)
        ex.gold = False
    examples.extend(extra)
    texts = [r["text"] for r in (*records, *unlabeled)]
    distill.report = attach(examples, distill.targets, texts, featurizer, config.labels,
                            distill.links, config.relations)
    summary = distill.report.summary()
    (log.warning if distill.report.lost else log.info)(summary)
    log.info("distillation: %d labelled windows, %d unlabeled windows", first, len(extra))
    config.data = {**(config.data or {}), "distill": {
        **distill.meta(), "unlabeled_texts": len(unlabeled), "unlabeled_windows": len(extra),
        "carried": distill.report.as_dict()}}


def _wrapped(model: TaskModel, cfg: TrainConfig, world: int, device: torch.device
             ) -> torch.nn.Module:
    """The model as the loop runs it: under DistributedDataParallel in a multi-process run,
    and compiled when asked (after DDP, as torch recommends; dynamic shapes: lengths vary)."""
    wrapped: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[device.index]
                                          if device.type == "cuda" else None)
    if cfg.compile:
        # torch.compile's stub returns a Callable; given a module it returns an OptimizedModule
        wrapped = torch.compile(wrapped, dynamic=True)  # type: ignore[assignment]
    return wrapped


class Trainer:
    """One training run's loop: optimizer steps with the configured regularisers, an
    evaluation and a checkpoint at each epoch's end, early stopping, the time budget."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, task: Task,
                 featurizer: Featurizer, config: ModelConfig, examples: list[Example],
                 dev_records: list[Record], run: RunDir, device: torch.device,
                 started: float | None = None, rank: int = 0, world: int = 1):
        self.cfg, self.model, self.task, self.featurizer = cfg, model, task, featurizer
        self.rank, self.world = rank, world
        # examples per optimizer step, over every rank and accumulation step
        self.global_batch = cfg.batch_size * world * cfg.accumulate
        self.config, self.examples, self.dev_records = config, examples, dev_records
        self.run, self.device = run, device
        self.started = clock() if started is None else started
        self.collate = Collator(featurizer, task)
        self.opt = adamw(param_groups(unwrap(model), cfg), device)
        self.ema = EMA(model, cfg.ema) if cfg.ema else None
        emb = unwrap(model).word_embeddings.weight  # a Parameter, typed as a Tensor by torch
        self.fgm = FGM(emb, cfg.fgm) if cfg.fgm else None
        self.pgd = PGD(emb, cfg.pgd, cfg.pgd_steps) if cfg.pgd else None
        self.per_epoch = len(length_buckets(examples, self.global_batch, cfg.seed, 0))
        # bf16 needs no loss scaling; fp16 does: its gradients underflow without a scaler
        self.autocast = torch.autocast(device_type=device.type, enabled=cfg.bf16 or cfg.fp16,
                                       dtype=torch.float16 if cfg.fp16 else torch.bfloat16)
        self.scaler = torch.amp.GradScaler(device.type) if cfg.fp16 else None
        self.state = TrainState(total=self.per_epoch * cfg.epochs)
        self.tracking = Tracking([])  # none unless report_to (set by train, main process only)
        self.on_epoch: Callable[[dict], bool] | None = None
        self.trained = (0, 0.0)  # examples and seconds of this epoch's steps in this process

    def resume(self) -> None:
        """Weights, optimizer, EMA, RNG states and counters from the checkpoint; the time
        already spent counts against ``max_minutes``."""
        saved = load_checkpoint(self.run.path / "last", self.model, self.opt, self.ema)
        if self.scaler is not None and "scaler" in saved:
            self.scaler.load_state_dict(saved["scaler"])
        self.state = TrainState.from_dict(saved)
        self.started -= self.state.elapsed
        log.info("resumed %s at epoch %d, batch %d", self.run.path, self.state.epoch + 1,
                 self.state.batch)

    # ------------------------------------------------------------ one step

    def objective(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
                  ) -> torch.Tensor:
        """The task's loss of a batch, flooded when ``flood`` is set; under distillation mixed
        with the teacher term (alone for a batch of unlabeled texts)."""
        if "soft" in batch:
            from gpner.training.distill import soft_loss

            kd = soft_loss(outputs[self.task.output], batch["soft"])
            if "soft_heads" in batch:  # a relation student: the link heads too
                kd = kd + soft_loss(outputs["heads"], batch["soft_heads"]) \
                    + soft_loss(outputs["tails"], batch["soft_tails"])
            if not bool(batch["gold"]):
                return kd
            w = self.cfg.kd_weight
            gold = self.task.loss(outputs, batch)
            loss = w * kd + (1 - w) * (flood(gold, self.cfg.flood) if self.cfg.flood else gold)
            return loss
        loss = self.task.loss(outputs, batch)
        return flood(loss, self.cfg.flood) if self.cfg.flood else loss

    def divergence(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.task.divergence(a, b, self.cfg.divergence)

    def train_step(self, batch: dict[str, torch.Tensor] | list[tuple[dict, float]]
                   ) -> torch.Tensor:
        """One optimizer step; returns the (detached) mean loss. ``batch``: a batch already on
        the device, or this rank's micro-batches of a global batch with their loss scales
        (gradients accumulate over them; DDP reduces once, after the last). A non-finite loss
        on any rank skips the step everywhere and is counted."""
        cfg, model, state = self.cfg, self.model, self.state
        micro = [(batch, 1.0)] if isinstance(batch, dict) else batch
        for g in self.opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(state.step, state.total, cfg.warmup, cfg.schedule)
        losses = []
        for m, (b, scale) in enumerate(micro):
            last = m == len(micro) - 1
            sync = (contextlib.nullcontext() if last or self.world == 1
                    else model.no_sync())  # type: ignore[operator]  # DDP's, only when world > 1
            with sync:
                loss = self._micro_step(b, scale)
            if loss is None:  # non-finite somewhere: nothing applied
                state.skipped_steps += 1
                log.warning("step %d: non-finite loss, step skipped", state.step)
                self.opt.zero_grad(set_to_none=True)
                return torch.tensor(float("nan"))
            if scale:
                losses.append(loss)
        if self.scaler is not None:
            self.scaler.unscale_(self.opt)  # clip the true gradients
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if self.scaler is not None:  # skips the step when a gradient overflowed
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(model)
        mean = torch.stack(losses).mean() if losses else torch.tensor(0.0)
        state.loss_sum += float(mean)
        state.loss_n += 1
        return mean

    def _micro_step(self, batch: dict[str, torch.Tensor], scale: float
                    ) -> torch.Tensor | None:
        """Forward and backward of one (micro-)batch with the regularisers, the loss scaled by
        ``scale`` for the backward; its unscaled loss, or None when a rank's loss is not
        finite."""
        cfg, model = self.cfg, self.model

        def objective(out: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.objective(out, batch)

        with self.autocast:
            if cfg.grad_penalty:
                loss, out, _ = penalised_loss(model, batch, objective, cfg.grad_penalty)
            elif cfg.rdrop:
                loss, out = rdrop_loss(model, batch, objective, self.divergence, cfg.rdrop)
            else:
                out = model(batch)
                loss = objective(out)
            if cfg.vat:
                loss = loss + cfg.vat * vat_loss(model, batch, out, self.divergence, cfg.vat_eps)
        if not all_true(bool(torch.isfinite(loss)), self.device):
            return None
        self._backward(loss * scale)
        if self.fgm is not None and self.fgm.attack():  # the direction: scaling changes no sign
            with self.autocast:
                adv = objective(model(batch))
            self._backward(adv * scale)
            self.fgm.restore()
        if self.pgd is not None:
            def adv_loss() -> torch.Tensor:
                with self.autocast:
                    adv = objective(model(batch)) * scale
                return self.scaler.scale(adv) if self.scaler is not None else adv
            self.pgd.run(model, adv_loss)
        return loss.detach()

    # ------------------------------------------------------------ epochs

    def fit(self, progress: bool = True,
            on_step: Callable[[int, float], None] | None = None) -> None:
        from tqdm.auto import tqdm

        cfg, state = self.cfg, self.state
        # disable=None: no bar when stderr is not a terminal (logs get the per-epoch lines)
        bar = tqdm(total=state.total, initial=state.step, unit="step", dynamic_ncols=True,
                   disable=None if progress else True, mininterval=0.5,
                   desc=f"{cfg.head} {cfg.encoder}")
        out_of_time = False
        while state.epoch < cfg.epochs and not out_of_time:
            out_of_time = self.train_epoch(bar, on_step)
            if self.end_epoch(out_of_time, bar):
                break
        bar.close()

    def train_epoch(self, bar: Any, on_step: Callable[[int, float], None] | None) -> bool:
        """The rest of the current epoch; True when ``max_minutes`` ran out during it."""
        cfg, state = self.cfg, self.state
        self.model.train()
        order = length_buckets(self.examples, self.global_batch, cfg.seed, state.epoch)
        start, examples = clock(), 0
        for b_idx in range(state.batch, len(order)):
            loss = float(self.train_step(self.micro_batches(order[b_idx])))
            state.step += 1
            state.batch = b_idx + 1
            examples += len(order[b_idx])
            self.trained = (examples, clock() - start)
            if state.step % cfg.log_every == 0:
                self.tracking.step(state.step, {"train/loss": loss,
                                                "train/lr": self.opt.param_groups[0]["lr"]})
            bar.update(1)
            bar.set_postfix(loss=f"{state.epoch_loss():.4f}",
                            best_f1=f"{max(0.0, state.best_f1):.4f}", epoch=state.epoch + 1)
            if on_step is not None:
                on_step(state.step, loss)
            if cfg.max_minutes and self.elapsed() > cfg.max_minutes * 60:
                log.warning("max_minutes=%s reached during epoch %d", cfg.max_minutes,
                            state.epoch + 1)
                return True
        return False

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def micro_batches(self, idx: Sequence[int]) -> list[tuple[dict[str, torch.Tensor], float]]:
        """This rank's micro-batches of the global batch ``idx`` with their loss scales
        n_m * world / n: summed over micro-batches and averaged over ranks by DDP, the gradient
        is the mean over the whole global batch, as one process with that batch computes it.
        An empty share runs one example with scale 0 (every rank must join the reduction)."""
        out = []
        for part in share(idx, self.rank, self.world, self.cfg.accumulate):
            scale = len(part) * self.world / len(idx)
            batch = self.collate([self.examples[k] for k in (part or list(idx[:1]))])
            out.append((to_device(batch, self.device), scale))
        return out

    def evaluate(self) -> dict | None:
        """Dev metrics of the current weights (the EMA weights when EMA is on). Under DDP each
        rank predicts every world-th record; the predictions are gathered in order, so every
        rank computes the same metrics as one process would."""
        if not self.dev_records:
            return None
        from gpner.metrics import evaluate, evaluate_relations

        predictor = Predictor(self.config, self.featurizer, self.task,
                              TorchBackend(unwrap(self.model), self.device))
        mine = [r["text"] for r in self.dev_records[self.rank::self.world]]
        with self._evaluated_weights():
            pred = predictor.predict(mine)
        pred = gather(pred, self.rank, self.world)
        if self.task.has_relations:  # triple F1 selects the model; entity scores alongside
            return evaluate_relations(self.dev_records, pred)
        return evaluate(self.dev_records, pred)

    def _evaluated_weights(self) -> contextlib.AbstractContextManager:
        """The weights evaluated and saved: the EMA's when EMA is on, else the model's own."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    def save_best(self, dev: dict | None = None) -> None:
        """The model directory, with the EMA weights when EMA is on; its model card gets the
        data, the dev scores and the command."""
        data = {}
        for part in ("train", "dev"):
            info = (self.config.data or {}).get(part) or {}
            if part in self.run.data_paths:
                data[part] = (f"{Path(self.run.data_paths[part]).name} ({info.get('records')} "
                              f"records, {info.get('entities')} entities)")
        card = {"data": data, "dev": dev, "epoch": self.state.epoch + 1, "command": _command()}
        with self._evaluated_weights():
            self.run.save_model(unwrap(self.model), self.featurizer, self.config, card)

    def end_epoch(self, out_of_time: bool, bar: Any) -> bool:
        """Evaluate, keep the best model, write the checkpoint and logs; True to stop."""
        cfg, state = self.cfg, self.state
        epoch = state.epoch
        self.model.eval()
        dev = self.evaluate()
        f1 = dev["f1"] if dev else None
        row = {"epoch": epoch + 1, "step": state.step, "complete": not out_of_time,
               "loss": state.epoch_loss(), "lr": self.opt.param_groups[0]["lr"],
               "minutes": self.elapsed() / 60}
        if self.trained[1] > 0:  # training examples per second over this epoch's steps
            row["examples_per_s"] = self.trained[0] / self.trained[1]
        self.trained = (0, 0.0)
        if dev:
            row["dev"] = {k: dev[k] for k in ("precision", "recall", "f1", "macro_f1")
                          if k in dev}
            if dev.get("per_label"):
                row["dev_labels"] = {lab: {k: v[k] for k in ("precision", "recall", "f1")}
                                     for lab, v in dev["per_label"].items()}
        state.history.append(row)
        self.tracking.epoch(state.step, row)  # before the checkpoint: see gpner.training.tracking
        if f1 is None or f1 > state.best_f1:
            state.best_f1, state.best_epoch, state.bad_epochs = (f1 or 0.0), epoch + 1, 0
            self.save_best(dev)
        else:
            state.bad_epochs += 1
        state.epoch += 1
        state.batch, state.loss_sum, state.loss_n = 0, 0.0, 0
        if cfg.max_minutes and not out_of_time:
            fit_schedule(state, cfg, self.per_epoch, self.elapsed())
        state.elapsed = self.elapsed()
        extra = {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}
        self.run.save_checkpoint(self.model, self.opt, self.ema, state.to_dict() | extra)
        self.run.write_history(state.history)
        bar.set_postfix(loss=f"{row['loss']:.4f}", dev_f1=f"{f1 or 0:.4f}",
                        best_f1=f"{max(0.0, state.best_f1):.4f}", epoch=epoch + 1)
        log.info("epoch %d: loss %.4f%s", epoch + 1, row["loss"],
                 f", dev F1 {f1:.4f}" if f1 is not None else "")
        if cfg.patience and self.dev_records and state.bad_epochs >= cfg.patience:
            log.info("early stop: no dev F1 gain in %d epochs", cfg.patience)
            return True
        if self.on_epoch is not None and self.on_epoch(row):
            log.info("stopped after epoch %d by the caller (on_epoch)", epoch + 1)
            return True
        return state.step >= state.total  # the time-fitted schedule has decayed to zero

    def elapsed(self) -> float:
        """Seconds of training so far, those before a resume included."""
        return clock() - self.started

    def finish(self) -> dict:
        """The summary, also written as summary.json."""
        state = self.state
        summary = {"output": str(self.run.path), "best_epoch": state.best_epoch,
                   "best_dev_f1": state.best_f1 if self.dev_records else None,
                   "epochs_run": state.epoch, "steps": state.step,
                   "minutes": round(self.elapsed() / 60, 2),
                   "skipped_steps": state.skipped_steps, "labels": self.config.labels,
                   "decode": dataclasses.asdict(self.config.decode), "data": self.config.data,
                   "world_size": self.world, "backend": backend(),
                   "batch_size_per_rank": self.cfg.batch_size,
                   "accumulate": self.cfg.accumulate, "global_batch_size": self.global_batch,
                   "config": self.cfg.to_dict()}
        self.run.write_summary(summary)
        model = self.run.path / "model"
        self.tracking.finish(summary, model if self.run.main and model.is_dir() else None)
        return summary


def _command() -> str | None:
    """The shell command that started training, for the model card (None from Python)."""
    import shlex
    import sys

    exe = Path(sys.argv[0]).name if sys.argv else ""
    if exe == "gpner" or sys.argv[0].endswith("gpner/cli/__main__.py"):
        return shlex.join(["gpner", *sys.argv[1:]])
    return None

"""The trainer: AdamW with warm-up and linear decay, length-bucketed batches with dynamic padding,
sparse labels per batch, dev F1 every epoch with early stopping, atomic checkpoints and an exact
``resume``.

A run directory holds ``model/`` (the best model so far: a model directory), ``last/`` (the
resume checkpoint: weights, optimizer, EMA and RNG states as safetensors plus ``state.json``),
``config.yaml`` (every setting), ``metrics.jsonl``, ``curve.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from gpner import __version__
from gpner.config import TrainConfig
from gpner.data import batches, has_overlaps, make_examples, max_span_width
from gpner.formats._io import atomic_write_text
from gpner.model import Predictor, SpanModel, collate, save_model, swap_dir
from gpner.records import Record, Report
from gpner.regularizers import EMA, FGM, PGD, penalised_loss, rdrop_loss, vat_loss

log = logging.getLogger("gpner")


def read_data(source: str | Path | Sequence[Record]) -> tuple[list[Record], Report]:
    """Records from a path in any supported format, or a list of records as is."""
    if isinstance(source, (str, Path)):
        from gpner.formats import read

        corpus = read(source)
        return corpus.records, corpus.report
    return list(source), Report("<records>", records=len(source))


def build(cfg: TrainConfig, train_records: Sequence[Record]) -> tuple[SpanModel, Any, dict]:
    """Model with fresh weights, featurizer and model metadata for a config and training data."""
    labels = sorted({e["label"] for r in train_records for e in r["entities"]})
    if not labels:
        raise ValueError("the training data has no entities")
    if cfg.encoder == "builtin":
        from gpner.encoders import BuiltinEncoder
        from gpner.features import BuiltinFeaturizer

        featurizer = BuiltinFeaturizer.build((r["text"] for r in train_records),
                                             cfg.min_bigram_freq)
        params = {k: getattr(cfg, k) for k in ("word_dim", "bigram_dim", "char_dim",
                                                "char_channels", "lstm_hidden", "lstm_layers",
                                                "dropout", "word_dropout")}
        encoder = BuiltinEncoder(featurizer.sizes(), **params)
        enc_meta = {"type": "builtin", "sizes": featurizer.sizes(), "params": params}
        tok_meta = {"type": "builtin", "files": ["vocab.json", "features.json"],
                    "lowercase": featurizer.words.lowercase, "units": "CJK characters, runs of "
                    "letters, runs of digits, single symbols", "max_chars_per_token": 16}
        max_length = cfg.max_length or 256
    else:
        from gpner.encoders import HFEncoder, load_hf
        from gpner.features import HFFeaturizer

        tokenizer, hf_model = load_hf(cfg.encoder)
        featurizer = HFFeaturizer(tokenizer)
        encoder = HFEncoder(hf_model)
        enc_meta = {"type": "hf", "name": cfg.encoder}
        tok_meta = {"type": "hf", "class": type(tokenizer).__name__, "files": "save_pretrained",
                    "special_tokens_before": featurizer.prefix,
                    "special_tokens_after": featurizer.num_special - featurizer.prefix}
        max_length = min(cfg.max_length or encoder.max_length, encoder.max_length)
    model = SpanModel(encoder, cfg.head, labels, cfg.head_size)
    meta = {"format": "gpner-model", "version": 1, "gpner_version": __version__,
            "labels": labels, "head": cfg.head, "head_size": cfg.head_size,
            "encoder": enc_meta, "tokenizer": tok_meta, "max_length": max_length,
            "decode": {"threshold": cfg.threshold, "flat": cfg.flat, "max_width": cfg.max_width},
            "train_config": cfg.to_dict()}
    return model, featurizer, meta


def _param_groups(model: SpanModel, cfg: TrainConfig) -> list[dict]:
    pretrained = cfg.encoder != "builtin"
    enc_lr = cfg.encoder_lr if cfg.encoder_lr is not None else (3e-5 if pretrained else cfg.lr)
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = enc_lr if name.startswith("encoder.") else cfg.lr
        decay = 0.0 if p.dim() < 2 else cfg.weight_decay  # no decay on biases and norms
        groups.setdefault((lr, decay), []).append(p)
    return [{"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd}
            for (lr, wd), ps in groups.items()]


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over ``warmup * total`` steps, then linear decay to 0 at ``total``."""
    w = int(warmup * total)
    if step < w:
        return (step + 1) / w
    return max(0.0, (total - step) / max(1, total - w))


# ---------------------------------------------------------------- checkpoints

def _save_checkpoint(path: Path, model: SpanModel, opt: torch.optim.Optimizer,
                     ema: EMA | None, state: dict) -> None:
    from safetensors.torch import save_file, save_model as save_weights

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, str(tmp / "model.safetensors"))
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    sd = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value.contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    if ema is not None:
        tensors.update({f"ema.{n}": t.contiguous() for n, t in ema.shadow.items()})
    save_file(tensors, str(tmp / "state.safetensors"))
    state = dict(state, param_groups=sd["param_groups"], opt_scalars=scalars,
                 ema_steps=ema.steps if ema else 0)
    (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
    swap_dir(tmp, path)


def _load_checkpoint(path: Path, model: SpanModel, opt: torch.optim.Optimizer,
                     ema: EMA | None) -> dict:
    from safetensors.torch import load_file, load_model as load_weights

    old = path.with_name(f".{path.name}.old")
    if not (path / "state.json").exists() and (old / "state.json").exists():
        path = old  # killed between the two renames of a checkpoint swap
    load_weights(model, str(path / "model.safetensors"))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    tensors = load_file(str(path / "state.safetensors"))
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, scalars in state["opt_scalars"].items():
        opt_state.setdefault(int(pid), {}).update(scalars)
    opt.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    if ema is not None:
        for n in ema.shadow:
            ema.shadow[n].copy_(tensors[f"ema.{n}"])
        ema.steps = state["ema_steps"]
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return state


# ---------------------------------------------------------------- training

def train(train_data: str | Path | Sequence[Record] | None,
          dev_data: str | Path | Sequence[Record] | None, output: str | Path, cfg: TrainConfig | None = None, resume: bool = False,
          progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> dict:
    """Train a model into the run directory ``output``; return the summary (also summary.json).

    ``resume=True`` continues from ``output/last`` and reaches the same weights as a run that was
    never interrupted. ``on_step(step, loss)`` is called after every optimizer step.
    """
    import yaml

    output = Path(output)
    if resume:
        saved = output / "config.yaml"
        if not (output / "last" / "state.json").exists() and not (
                output / ".last.old" / "state.json").exists():
            raise FileNotFoundError(f"{output}: no checkpoint to resume (last/state.json)")
        cfg = TrainConfig().update(yaml.safe_load(saved.read_text(encoding="utf-8")), str(saved))
        paths = json.loads((output / "data.json").read_text(encoding="utf-8")) \
            if (output / "data.json").exists() else {}
        train_data = train_data if train_data is not None else paths.get("train")
        dev_data = dev_data if dev_data is not None else paths.get("dev")
        if train_data is None:
            raise ValueError(f"{output}: the training data is not recorded; pass --train")
    cfg = cfg or TrainConfig()
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.time()

    train_records, train_report = read_data(train_data)
    dev_records, dev_report = read_data(dev_data) if dev_data is not None else ([], None)
    model, featurizer, meta = build(cfg, train_records)
    model.to(device)
    span_head = model.is_span_head
    align_report = Report(f"{train_report.source} (tokens)")
    examples = make_examples(train_records, featurizer, meta["labels"], meta["max_length"],
                             align_report, cfg.misaligned, flat_only=not span_head)
    if meta["decode"]["flat"] is None:
        meta["decode"]["flat"] = not has_overlaps(train_records)
    if meta["decode"]["max_width"] is None and span_head:
        meta["decode"]["max_width"] = max_span_width(examples)
    meta["data"] = {"train": train_report.as_dict(), "train_alignment": align_report.as_dict(),
                    "dev": dev_report.as_dict() if dev_report else None}
    for rep in (train_report, align_report, dev_report):
        if rep is not None:
            (log.warning if rep.total_skipped else log.info)(rep.summary())

    output.mkdir(parents=True, exist_ok=True)
    # data paths (absolute), so that `--resume` needs only the run directory
    atomic_write_text(output / "data.json", json.dumps(
        {k: str(Path(v).resolve()) for k, v in (("train", train_data), ("dev", dev_data))
         if isinstance(v, (str, Path))}))
    atomic_write_text(output / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False,
                                                             allow_unicode=True))
    opt = torch.optim.AdamW(_param_groups(model, cfg))
    ema = EMA(model, cfg.ema) if cfg.ema else None
    emb = model.encoder.word_embeddings.weight
    fgm = FGM(emb, cfg.fgm) if cfg.fgm else None
    pgd = PGD(emb, cfg.pgd, cfg.pgd_steps) if cfg.pgd else None
    per_epoch = len(batches(examples, cfg.batch_size, cfg.seed, 0))
    total = per_epoch * cfg.epochs
    state = {"epoch": 0, "batch": 0, "step": 0, "total": total, "best_f1": -1.0, "best_epoch": 0,
             "bad_epochs": 0, "history": [], "elapsed": 0.0, "loss_sum": 0.0, "loss_n": 0,
             "skipped_steps": 0}
    if resume:
        state = _load_checkpoint(output / "last", model, opt, ema)
        started -= state["elapsed"]
        log.info("resumed %s at epoch %d, batch %d", output, state["epoch"] + 1, state["batch"])

    def current_state() -> dict:
        return state | {"elapsed": time.time() - started}

    def evaluate_dev() -> dict | None:
        if not dev_records:
            return None
        predictor = Predictor(model, featurizer, meta, device)
        if ema is not None:
            with ema.applied(model):
                return predictor.evaluate(dev_records)
        return predictor.evaluate(dev_records)

    def save_best() -> None:
        if ema is not None:
            with ema.applied(model):
                save_model(model, featurizer, meta, output / "model")
        else:
            save_model(model, featurizer, meta, output / "model")

    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs get the per-epoch lines instead)
    bar = tqdm(total=total, initial=state["step"], disable=None if progress else True,
               unit="step", dynamic_ncols=True, mininterval=0.5, desc=f"{cfg.head} {cfg.encoder}")
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    out_of_time = False
    while state["epoch"] < cfg.epochs and not out_of_time:
        epoch = state["epoch"]
        model.train()
        order = batches(examples, cfg.batch_size, cfg.seed, epoch)
        for b_idx in range(state["batch"], len(order)):
            batch = collate([examples[k] for k in order[b_idx]], featurizer, device)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * lr_factor(state["step"], state["total"], cfg.warmup)
            with autocast:
                if cfg.grad_penalty:
                    loss, out, _ = penalised_loss(model, batch, cfg.grad_penalty)
                elif cfg.rdrop:
                    loss, out = rdrop_loss(model, batch, cfg.rdrop)
                else:
                    out = model(batch)
                    loss = model.loss(out, batch)
                if cfg.vat:
                    loss = loss + cfg.vat * vat_loss(model, batch, out, cfg.vat_eps)
            if not torch.isfinite(loss):
                state["skipped_steps"] += 1
                log.warning("step %d: non-finite loss, step skipped", state["step"])
                opt.zero_grad(set_to_none=True)
            else:
                loss.backward()
                if fgm is not None and fgm.attack():
                    with autocast:
                        adv = model.loss(model(batch), batch)
                    adv.backward()
                    fgm.restore()
                if pgd is not None:
                    def adv_loss() -> torch.Tensor:
                        with autocast:
                            return model.loss(model(batch), batch)
                    pgd.run(model, adv_loss)
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(model)
                state["loss_sum"] += float(loss.detach())
                state["loss_n"] += 1
            state["step"] += 1
            state["batch"] = b_idx + 1
            bar.update(1)
            bar.set_postfix(loss=f"{state['loss_sum'] / max(1, state['loss_n']):.4f}",
                            best_f1=f"{max(0.0, state['best_f1']):.4f}", epoch=epoch + 1)
            if on_step is not None:
                on_step(state["step"], float(loss.detach()))
            if cfg.max_minutes and time.time() - started > cfg.max_minutes * 60:
                out_of_time = True
                log.warning("max_minutes=%s reached during epoch %d", cfg.max_minutes, epoch + 1)
                break
        # end of epoch (or out of time): evaluate, keep the best, write the checkpoint
        model.eval()
        dev = evaluate_dev()
        f1 = dev["f1"] if dev else None
        row = {"epoch": epoch + 1, "step": state["step"], "complete": not out_of_time,
               "loss": state["loss_sum"] / max(1, state["loss_n"]),
               "lr": opt.param_groups[0]["lr"], "minutes": (time.time() - started) / 60}
        if dev:
            row["dev"] = {k: dev[k] for k in ("precision", "recall", "f1", "macro_f1")}
        state["history"].append(row)
        if f1 is None or f1 > state["best_f1"]:
            state["best_f1"], state["best_epoch"], state["bad_epochs"] = (f1 or 0.0), epoch + 1, 0
            save_best()
        else:
            state["bad_epochs"] += 1
        state["epoch"] += 1
        state["batch"], state["loss_sum"], state["loss_n"] = 0, 0.0, 0
        if cfg.max_minutes and not out_of_time:
            _fit_schedule(state, cfg, per_epoch, time.time() - started)
        _save_checkpoint(output / "last", model, opt, ema, current_state())
        _write_logs(output, state["history"])
        bar.set_postfix(loss=f"{row['loss']:.4f}", dev_f1=f"{f1 or 0:.4f}",
                        best_f1=f"{max(0.0, state['best_f1']):.4f}", epoch=epoch + 1)
        log.info("epoch %d: loss %.4f%s", epoch + 1, row["loss"],
                 f", dev F1 {f1:.4f}" if f1 is not None else "")
        if cfg.patience and dev_records and state["bad_epochs"] >= cfg.patience:
            log.info("early stop: no dev F1 gain in %d epochs", cfg.patience)
            break
        if state["step"] >= state["total"]:
            break  # the time-fitted schedule has decayed to zero
    bar.close()
    summary = {"output": str(output), "best_epoch": state["best_epoch"],
               "best_dev_f1": state["best_f1"] if dev_records else None,
               "epochs_run": state["epoch"], "steps": state["step"],
               "minutes": round((time.time() - started) / 60, 2),
               "skipped_steps": state["skipped_steps"], "labels": meta["labels"],
               "decode": meta["decode"], "data": meta["data"], "config": cfg.to_dict()}
    atomic_write_text(output / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def _fit_schedule(state: dict, cfg: TrainConfig, per_epoch: int, elapsed: float) -> None:
    """With ``max_minutes``, plan the schedule for the epochs that still fit, so the learning
    rate decays to zero when time runs out instead of being cut off mid-schedule.

    Refitted after every epoch, both ways (never past ``cfg.epochs``): the first epoch is
    slower than the rest (allocator and cache warm-up), and fitting on it alone left a
    quarter of the budget unused. The epoch time is the mean over the epochs after the first.
    """
    done = state["epoch"]
    times = [r["minutes"] * 60 for r in state["history"]]
    if len(times) >= 2:
        seconds_per_epoch = (times[-1] - times[0]) / (len(times) - 1)
    else:
        seconds_per_epoch = elapsed / max(1, done)
    fit = int((cfg.max_minutes * 60 - elapsed) // max(seconds_per_epoch, 1e-9))
    planned = done + max(0, min(fit, cfg.epochs - done))
    total = max(state["step"], planned * per_epoch)
    if total != state["total"]:
        state["total"] = total
        log.info("max_minutes=%s: schedule fitted to %d epochs", cfg.max_minutes, planned)


def _write_logs(output: Path, history: list[dict]) -> None:
    atomic_write_text(output / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency, but stay usable
        return
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [r["loss"] for r in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    if any("dev" in r for r in history):
        ax2 = ax.twinx()
        ax2.plot([r["epoch"] for r in history if "dev" in r],
                 [r["dev"]["f1"] for r in history if "dev" in r], "s-", color="tab:red")
        ax2.set_ylabel("dev F1", color="tab:red")
    ax.set_title("gpner training")
    fig.tight_layout()
    tmp = output / ".curve.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, output / "curve.png")

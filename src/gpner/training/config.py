"""One typed training config, saved in full beside the weights so a run can be reproduced.

Sources, later ones winning: the defaults below, a YAML file (``--config run.yaml``), then
``key=value`` overrides on the command line (values parsed as YAML: ``lr=3e-5``, ``rdrop=1``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpner.errors import ConfigError


@dataclass
class TrainConfig:
    """Every training setting, with its default; saved as the run's ``config.yaml``."""

    # model
    task: str = "auto"  # ner | relations | auto: relations when the training data has them
    encoder: str = "builtin"  # "builtin", a Hugging Face model name, or a local model directory
    head: str = "egp"  # gp | egp | crf | softmax (gpner.tasks.HEADS)
    head_size: int = 64
    # built-in encoder (BiLSTM over word + bigram + character-CNN features)
    word_dim: int = 128
    bigram_dim: int = 64
    char_dim: int = 32
    char_channels: int = 64
    lstm_hidden: int = 256  # per direction
    lstm_layers: int = 2
    dropout: float = 0.3
    word_dropout: float = 0.05  # share of tokens replaced by [UNK] in training
    min_bigram_freq: int = 2
    # data
    max_length: int | None = None  # window size in tokens; None: 256 built-in, model max for HF
    stride: int | None = None  # tokens between window starts; None: half a window
    encoder_max_length: int | None = None  # HF: extend learned positions to this many (n^2 max)
    misaligned: str = "skip"  # gold spans with a boundary inside a token: skip | expand
    # optimisation
    epochs: int = 20
    batch_size: int = 32  # per process and accumulation step; see accumulate
    # micro-batches per optimizer step: the global batch is batch_size * processes * accumulate
    accumulate: int = 1
    lr: float = 2e-3  # head, and the built-in encoder
    # a pretrained encoder's rate; None: 3e-5 for HF, lr for built-in
    encoder_lr: float | None = None
    weight_decay: float = 0.01
    warmup: float = 0.05  # share of steps with linear warm-up, then the schedule
    schedule: str = "linear"  # after the warm-up: linear decay to 0, or constant
    grad_clip: float = 5.0
    patience: int = 4  # epochs without dev F1 gain before stopping; 0 = never stop early
    seed: int = 42
    threads: int | None = None  # torch intra-op threads; None: torch's default
    bf16: bool = False  # bfloat16 autocast for the forward pass
    fp16: bool = False  # float16 autocast with a gradient scaler (CUDA; works on CPU, slowly)
    compile: bool = False  # torch.compile the model (dynamic shapes): pays off on long GPU runs
    max_minutes: float | None = None  # stop (after the current epoch's evaluation) past this
    # regularisers (0 = off)
    rdrop: float = 0.0  # weight of D(s1, s2) between two dropout passes
    # D for rdrop and vat: "mean" over each text's valid cells, or the published "sum" over cells
    # (which grows with L^2: on CMeEE, R-Drop dev F1 53.33 with mean, 18.71 with sum)
    divergence: str = "mean"
    fgm: float = 0.0  # epsilon of the FGM perturbation of the embedding matrix
    pgd: float = 0.0  # epsilon ball of PGD
    pgd_steps: int = 3
    vat: float = 0.0  # weight of the virtual adversarial loss D(s, s_adv)
    vat_eps: float = 1.0  # norm of the virtual adversarial perturbation (per token)
    grad_penalty: float = 0.0  # weight of ||d loss / d embeddings||^2
    ema: float = 0.0  # decay of the weight average used for evaluation and saving
    flood: float = 0.0  # flooding level b: train on |L - b| + b (0 = off)
    # distillation (gpner distill; gpner.training.distill): learn teachers' span scores
    teachers: str = ""  # comma list of teacher model or run directories ("": no teacher)
    unlabeled: str | None = None  # texts (lines or JSON lines) the teachers label for the student
    kd_weight: float = 0.5  # share of the teacher term where gold exists (the rest: gold loss)
    kd_temperature: float = 1.0  # T: targets sigmoid(2 * teacher score / T)
    kd_floor: float = 1e-4  # teacher probabilities below this count as 0 (sparse targets)
    # decoding
    threshold: float = 0.0
    flat: bool | None = None  # None: flat iff the training data has no overlapping entities
    max_width: int | None = None  # None: learned, the widest gold span in tokens
    # tracking (main process only; a tracker that fails is a warning, never a failed run)
    report_to: str = ""  # comma list: tensorboard, mlflow ("" or none: off)
    log_every: int = 50  # optimizer steps between the train loss/lr points a tracker gets
    register_model: str = "gpner"  # MLflow registered model name ("": log, do not register)

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def update(self, values: dict[str, Any], source: str) -> "TrainConfig":
        """Return a copy with ``values`` applied; unknown keys are an error naming ``source``."""
        known = set(self.fields())
        if values.get("extra") == {}:  # an unused key that gpner 0.1.0 wrote into config.yaml
            values = {k: v for k, v in values.items() if k != "extra"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {unknown}; known: "
                              f"{', '.join(sorted(known))}", code="E301")
        types = {f.name: str(f.type) for f in dataclasses.fields(self)}
        values = {k: _coerce(k, v, types[k], source) for k, v in values.items()}
        cfg = dataclasses.replace(self, **values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Every setting valid, alone and together (ConfigError naming the setting)."""
        from gpner.tasks import HEADS, TASKS, head_info

        if self.task != "auto" and self.task not in TASKS:
            raise ConfigError(f"task must be auto or one of {', '.join(TASKS)}, got {self.task!r}")
        info = head_info(self.head)
        if self.task == "relations" and info.kind != "span":
            raise ConfigError(f"task=relations needs a span head (gp or egp), got {self.head!r}")
        self._check_ranges()
        self._check_choices()
        self._check_sizes()
        if info.kind != "span" and self.teachers:
            raise ConfigError(f"distillation learns span scores: the student needs a span head "
                              f"(gp or egp), not {self.head}", code="E305")
        if self.unlabeled and not self.teachers:
            raise ConfigError("unlabeled texts are labelled by a teacher: give teachers "
                              "(gpner distill --teacher RUN)", code="E305")
        if info.kind != "span" and (self.rdrop or self.vat):
            spans = ", ".join(k for k, v in HEADS.items() if v.kind == "span")
            raise ConfigError(f"rdrop and vat use the GlobalPointer divergence: heads {spans} "
                              f"only, not {self.head}")

    def _check_choices(self) -> None:
        for name, choices in (("divergence", ("sum", "mean")),
                              ("schedule", ("linear", "constant")),
                              ("misaligned", ("skip", "expand"))):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be {' or '.join(choices)}, got "
                                  f"{getattr(self, name)!r}")
        if self.bf16 and self.fp16:
            raise ConfigError("bf16 and fp16 are two precisions: choose one", code="E305")
        from gpner.training.tracking import parse_report_to

        parse_report_to(self.report_to)

    def _check_sizes(self) -> None:
        for name in ("epochs", "batch_size", "head_size", "lstm_layers", "pgd_steps",
                     "accumulate", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_length", "stride", "encoder_max_length"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stride and self.max_length and self.stride > self.max_length:
            raise ConfigError(f"stride {self.stride} is longer than the window (max_length "
                              f"{self.max_length}): text between windows would be skipped")
        if self.head_size % 2:
            raise ConfigError(f"head_size must be even (RoPE rotates pairs), got {self.head_size}")

    def _check_ranges(self) -> None:
        """Every number in its range, finite (a NaN learning rate would train a NaN model)."""
        def check(name: str, low: float, high: float = math.inf, low_open: bool = False,
                  high_open: bool = False, none_ok: bool = False) -> None:
            value = getattr(self, name)
            if value is None and none_ok:
                return
            ok = (isinstance(value, (int, float)) and math.isfinite(value)
                  and (value > low if low_open else value >= low)
                  and (value < high if high_open else value <= high))
            if not ok:
                span = (("(" if low_open else "[") + f"{low:g}, "
                        + (f"{high:g}" if high != math.inf else "inf")
                        + (")" if high_open or high == math.inf else "]"))
                raise ConfigError(f"{name}={value!r} is out of range: a finite number in {span}"
                                  + (" or empty" if none_ok else ""), code="E303")

        check("lr", 0, low_open=True)
        check("encoder_lr", 0, low_open=True, none_ok=True)
        check("weight_decay", 0)
        check("warmup", 0, 1, high_open=True)
        check("dropout", 0, 1, high_open=True)
        check("word_dropout", 0, 1, high_open=True)
        check("ema", 0, 1, high_open=True)
        check("grad_clip", 0)  # 0: no clipping
        check("patience", 0)
        check("threads", 1, none_ok=True)
        check("max_minutes", 0, low_open=True, none_ok=True)
        for name in ("rdrop", "fgm", "pgd", "vat", "grad_penalty", "flood"):
            check(name, 0)
        check("vat_eps", 0, low_open=True)
        check("kd_weight", 0, 1)
        check("kd_temperature", 0, low_open=True)
        check("kd_floor", 0, 0.5, low_open=True, high_open=True)
        check("threshold", -math.inf)
        for name in ("word_dim", "bigram_dim", "char_dim", "char_channels", "lstm_hidden",
                     "min_bigram_freq"):
            check(name, 1)
        check("max_width", 1, none_ok=True)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any, kind: str, source: str) -> Any:
    """Check/convert a value to the field's declared type. YAML 1.1 reads ``3e-5`` (no dot) as a
    string, so numbers given as strings are converted rather than rejected."""
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"{source}: {key} cannot be empty", code="E302")
    try:
        if kind.startswith("bool"):
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
                return value.lower() in ("true", "yes")
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind.startswith("str"):
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key}={value!r} is not a valid {kind}",
                          code="E302") from None
    return value


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lr=3e-5", "rdrop=1"]`` -> ``{"lr": 3e-05, "rdrop": 1}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"command line: {pair!r} is not key=value", code="E302")
        key, value = pair.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"command line: {pair!r}: the value is not valid YAML "
                              f"({getattr(exc, 'problem', None) or exc})", code="E304") from None
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: TrainConfig | None = None) -> TrainConfig:

    cfg = base or TrainConfig()
    if path:
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings (key: value lines), "
                              f"found {type(data).__name__}", code="E304")
        cfg = cfg.update(data, str(path))
    if overrides:
        cfg = cfg.update(parse_overrides(overrides), "command line")
    cfg.validate()
    return cfg


def load_yaml(path: str | Path) -> Any:
    """A YAML file through ``safe_load`` (tags that build objects are refused); errors name the
    file, line and column."""
    import yaml

    from gpner.textfiles import read_text

    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({what})", code="E304") from None

"""The model directory, written and read here only.

A model directory holds ``config.json`` (a :class:`ModelConfig`: labels as ``id2label`` and
``label2id``, task, head, encoder and tokenizer description, max length, decoding defaults and
the full training config), ``model.safetensors`` and the tokenizer files; a Hugging Face encoder
adds ``encoder/config.json``. Loading never unpickles anything.

Format versions: 2 is written now. 1 (gpner 0.1.0: ``{"format": "gpner-model", "version": 1,
"labels": [...]}``, weights named ``head.*``) is read and migrated on load.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpner import __version__
from gpner.atomic import old_copy, staged_dir
from gpner.errors import ModelFileError, ModelNotFound
from gpner.records import is_int
from gpner.textfiles import read_model_json

if TYPE_CHECKING:
    from gpner.contracts import Featurizer
    from gpner.model.network import Encoder, TaskModel

FORMAT_VERSION = 2
MODEL_TYPE = "gpner"
# what makes the directory a transformers model directory too (gpner.hf has the classes)
HF_ARCHITECTURE = "GlobalPointerForSpanClassification"
HF_REMOTE_CODE = "gpner_hf.py"
HF_AUTO_MAP = {"AutoConfig": "gpner_hf.GpnerConfig", "AutoModel": f"gpner_hf.{HF_ARCHITECTURE}"}
HF_REMOTE_CODE_TEXT = '''"""transformers' remote code for a gpner model directory.

The classes live in gpner (pip install 'gpner[hf]'); this file lets
AutoModel.from_pretrained(DIR, trust_remote_code=True) find them."""

from gpner.hf import GlobalPointerForSpanClassification, GpnerConfig  # noqa: F401
'''


@dataclass
class EncoderSpec:
    """How to build the encoder again: its type and its name or sizes."""

    type: str  # "builtin" or "hf"
    name: str | None = None  # hf: the hub name or directory it was trained from
    sizes: dict[str, int] | None = None  # builtin: vocabulary sizes (words, bigrams, chars)
    params: dict[str, Any] | None = None  # builtin: layer sizes and dropouts


@dataclass
class DecodeSettings:
    """The decoding a saved model uses unless a call says otherwise."""

    threshold: float = 0.0  # on span scores; 0 is probability 0.5
    flat: bool | None = None  # None until training decides: flat iff the data never nests
    max_width: int | None = None  # widest span predicted, in tokens (learned from the data)
    stride: int | None = None  # tokens between window starts; None: half a window
    # per-label thresholds (gpner calibrate); a label without one uses ``threshold``
    thresholds: dict[str, float] | None = None
    # per-label maps from score to a calibrated prob (gpner calibrate; gpner.calibration)
    calibration: dict[str, dict[str, Any]] | None = None


@dataclass
class ModelConfig:
    """A model directory's ``config.json``: everything needed to build, load and run the model."""

    labels: list[str]  # label id k is labels[k]
    head: str
    encoder: EncoderSpec
    tokenizer: dict[str, Any]  # how texts become tokens (informational; files sit beside)
    max_length: int  # window size in tokens, special tokens included
    head_size: int = 64
    task: str = "ner"
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    train_config: dict[str, Any] = field(default_factory=dict)  # TrainConfig.to_dict()
    data: dict[str, Any] | None = None  # what the readers and the alignment skipped, and why
    encoder_config: dict[str, Any] | None = None  # a Hugging Face encoder's own config
    relations: list[str] | None = None  # relation extraction: relation id p is relations[p]
    gpner_version: str = __version__
    format_version: int = FORMAT_VERSION  # the version it was read from; saving writes the latest

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {lab: k for k, lab in enumerate(self.labels)}

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION,
                "gpner_version": self.gpner_version, "task": self.task, "head": self.head,
                "head_size": self.head_size,
                # JSON object keys are strings, as in Hugging Face configs
                "id2label": {str(k): v for k, v in self.id2label.items()},
                "label2id": self.label2id, "max_length": self.max_length,
                "encoder": dataclasses.asdict(self.encoder), "tokenizer": self.tokenizer,
                "decode": dataclasses.asdict(self.decode), "train_config": self.train_config,
                "data": self.data,
                **({"relations": self.relations} if self.relations is not None else {}),
                **({"encoder_config": self.encoder_config} if self.encoder_config else {})}

    @classmethod
    def from_dict(cls, d: Any, source: str = "config.json") -> "ModelConfig":
        """Parse (and migrate) a config.json object; errors name ``source`` and the key."""
        if not isinstance(d, dict):
            raise ModelFileError(f"{source}: expected a JSON object, found {type(d).__name__}")
        if d.get("format") == "gpner-model" and "model_type" not in d:
            d = _from_v1(d, source)
        if d.get("model_type") != MODEL_TYPE:
            raise ModelFileError(f"{source} is not a gpner model config (model_type "
                                 f"{d.get('model_type')!r}, expected {MODEL_TYPE!r})")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelFileError(f"{source}: format_version {version!r}; this gpner "
                                 f"({__version__}) reads up to {FORMAT_VERSION}: upgrade gpner",
                                 code="E204")
        missing = [k for k in ("head", "id2label", "encoder", "tokenizer", "max_length")
                   if k not in d]
        if missing:
            raise ModelFileError(f"{source}: missing key(s) {missing}")
        try:
            id2label = {int(k): v for k, v in d["id2label"].items()}
        except (AttributeError, ValueError):
            raise ModelFileError(f"{source}: id2label must map 0..C-1 to labels, found "
                                 f"{d['id2label']!r}") from None
        labels = [id2label.get(k) for k in range(len(id2label))]
        if None in labels or not all(isinstance(x, str) for x in labels):
            raise ModelFileError(f"{source}: id2label must map 0..C-1 to labels, found {id2label}")
        _check_label_names([str(x) for x in labels], d, source)
        if "label2id" in d and d["label2id"] != {lab: k for k, lab in enumerate(labels)}:
            raise ModelFileError(f"{source}: label2id {d['label2id']} does not invert id2label")
        relations = d.get("relations")
        if d.get("task") == "relations" and not (
                isinstance(relations, list) and relations
                and all(isinstance(x, str) for x in relations)):
            raise ModelFileError(f"{source}: a relations model needs 'relations', a list of "
                                 f"relation labels; found {relations!r:.80}")
        _check_encoder(d["encoder"], source)
        _check_decode(d.get("decode", {}), source)
        _check_sizes(d, source)
        try:
            return cls(labels=[str(x) for x in labels], head=d["head"],
                       head_size=d.get("head_size", 64),
                       task=d.get("task", "ner"), encoder=EncoderSpec(**d["encoder"]),
                       tokenizer=d["tokenizer"], max_length=int(d["max_length"]),
                       decode=DecodeSettings(**d.get("decode", {})),
                       train_config=d.get("train_config", {}), data=d.get("data"),
                       encoder_config=d.get("encoder_config"), relations=relations,
                       gpner_version=d.get("gpner_version", "unknown"), format_version=version)
        except (TypeError, ValueError) as exc:  # an unknown key in encoder or decode, a bad number
            raise ModelFileError(f"{source}: {exc}") from None

    def save(self, directory: Path, extra: dict[str, Any] | None = None) -> None:
        """``config.json``; ``extra`` keys (the transformers fields) are written beside."""
        (Path(directory) / "config.json").write_text(
            json.dumps({**self.to_dict(), **(extra or {})}, indent=2, ensure_ascii=False)
            + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "ModelConfig":
        path = Path(directory) / "config.json"
        return cls.from_dict(read_model_json(path), str(path))


def _check_label_names(labels: list[str], d: dict[str, Any], source: str) -> None:
    """Each label id its own name, and per-label thresholds only for the model's labels."""
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:  # two ids of one name: predictions of one would come out under the other
        raise ModelFileError(f"{source}: id2label names {twice} more than once; every "
                             "label id needs its own name")
    for key in ("thresholds", "calibration"):
        per = (d.get("decode") or {}).get(key)
        unknown = sorted(set(per) - set(labels)) if isinstance(per, dict) else []
        if unknown:
            raise ModelFileError(f"{source}: decode.{key} names labels the model does not "
                                 f"have: {unknown}")


def _check_decode(dec: Any, source: str) -> None:
    """Decoding defaults of the right types (E203 naming the key)."""
    import math

    if not isinstance(dec, dict):
        raise ModelFileError(f"{source}: 'decode' should be an object, found {dec!r:.60}")
    t = dec.get("threshold", 0.0)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise ModelFileError(f"{source}: decode.threshold should be a finite number, found {t!r}")
    if dec.get("flat") not in (None, True, False):
        raise ModelFileError(f"{source}: decode.flat should be true, false or null, found "
                             f"{dec.get('flat')!r}")
    per = dec.get("thresholds")
    if per is not None and not (isinstance(per, dict) and all(
            isinstance(k, str) and not isinstance(v, bool) and isinstance(v, (int, float))
            and math.isfinite(v) for k, v in per.items())):
        raise ModelFileError(f"{source}: decode.thresholds should map labels to finite "
                             f"numbers, found {per!r:.80}")
    cal = dec.get("calibration")
    if cal is not None:
        from gpner.calibration import check_spec

        bad = ({"": "should map labels to fitted maps"} if not isinstance(cal, dict) else
               {k: why for k, v in cal.items() if (why := check_spec(v))})
        if bad:
            label, why = next(iter(bad.items()))
            raise ModelFileError(f"{source}: decode.calibration{'.' + label if label else ''}"
                                 f" {why}")
    for key in ("max_width", "stride"):
        v = dec.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ModelFileError(f"{source}: decode.{key} should be a positive integer or null, "
                                 f"found {v!r}")


MAX_WINDOW = 8192  # tokens per window: span scores take C x L x L cells, 8192^2 is 67M each


def _check_sizes(d: dict[str, Any], source: str) -> None:
    """Every number that sizes the model: a whole number in its range (``max_length: 2.9`` is
    not read as 2, ``10**12`` is not accepted to fail later on memory), dropouts in [0, 1)."""
    limit = MAX_WINDOW
    positions = (d.get("encoder_config") or {}).get("max_position_embeddings")
    if is_int(positions) and positions > 0:
        limit = min(limit, positions)
    v = d["max_length"]
    if not (is_int(v) and 8 <= v <= limit):
        raise ModelFileError(f"{source}: max_length should be a whole number of tokens from 8 "
                             f"to {limit}, found {v!r}")
    v = d.get("head_size", 64)
    if not (is_int(v) and 1 <= v <= 4096):
        raise ModelFileError(f"{source}: head_size should be a whole number from 1 to 4096, "
                             f"found {v!r}")
    enc = d["encoder"]
    for key, v in (enc.get("params") or {}).items() if enc.get("type") == "builtin" else ():
        if "dropout" in key:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1
            want = "a number from 0 up to 1"
        else:
            ok, want = is_int(v) and 1 <= v <= 1 << 16, "a whole number from 1 to 65536"
        if not ok:
            raise ModelFileError(f"{source}: encoder.params.{key} should be {want}, found {v!r}")
    for key, v in (enc.get("sizes") or {}).items() if enc.get("type") == "builtin" else ():
        if not (is_int(v) and 1 <= v <= 1 << 24):
            raise ModelFileError(f"{source}: encoder.sizes.{key} should be a whole number from "
                                 f"1 to {1 << 24}, found {v!r}")


def _check_encoder(enc: Any, source: str) -> None:
    """The encoder description must say how to build the encoder (E203 naming the key)."""
    if not isinstance(enc, dict):
        raise ModelFileError(f"{source}: 'encoder' should be an object, found {enc!r:.60}")
    kind = enc.get("type")
    if kind == "builtin":
        sizes, params = enc.get("sizes"), enc.get("params")
        if not (isinstance(sizes, dict) and all(
                isinstance(sizes.get(k), int) and sizes[k] > 0 for k in ("words", "bigrams",
                                                                         "chars"))):
            raise ModelFileError(f"{source}: encoder.sizes should map words, bigrams and chars "
                                 f"to vocabulary sizes, found {sizes!r:.80}")
        if not isinstance(params, dict):
            raise ModelFileError(f"{source}: encoder.params should be an object of layer "
                                 f"sizes, found {params!r:.80}")
    elif kind == "hf":
        if not isinstance(enc.get("name"), str):
            raise ModelFileError(f"{source}: encoder.name should be the encoder's name, found "
                                 f"{enc.get('name')!r:.80}")
    else:
        raise ModelFileError(f"{source}: encoder.type should be builtin or hf, found {kind!r}")


def _from_v1(d: dict[str, Any], source: str) -> dict[str, Any]:
    """A format-1 config.json (gpner 0.1.0) in the format-2 layout."""
    if d.get("version", 1) != 1:
        raise ModelFileError(f"{source}: unknown gpner format version {d.get('version')!r}",
                             code="E204")
    rest = {k: v for k, v in d.items() if k not in ("format", "version", "labels")}
    labels = d.get("labels") or []
    return {**rest, "model_type": MODEL_TYPE, "format_version": 1, "task": "ner",
            "id2label": {str(k): v for k, v in enumerate(labels)}}


def migrate_weights(state: dict[str, Any], version: int) -> dict[str, Any]:
    """Weight names of an older format -> the current ones (format 1 had one head, ``head``)."""
    if version >= 2:
        return state
    return {("heads.entities." + k[5:] if k.startswith("head.") else k): v
            for k, v in state.items()}


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def _refuse_odd_files(directory: Path) -> None:
    """A model file that exists but is not a regular file (a FIFO would block the reader, a
    link to /dev/zero never ends, a directory cannot be read) is E209 naming it and its kind."""
    import stat

    for name in ("config.json", "model.safetensors"):
        path = directory / name
        try:
            mode = path.stat().st_mode
        except OSError:
            if path.is_symlink():
                raise ModelFileError(f"{path}: a link to {os.readlink(path)!r}, which does not "
                                     "exist", code="E209") from None
            continue
        if stat.S_ISREG(mode):
            continue
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)"
                if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode)
                or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        via = f" (a link to {os.readlink(path)!r})" if path.is_symlink() else ""
        raise ModelFileError(f"{path}: {kind}{via}, not a regular file; copy the model "
                             "directory again", code="E209")


def resolve_dir(directory: str | Path) -> Path:
    """The model directory for ``directory``: itself, a run directory's ``model/``, or the
    complete previous copy that a kill between the two renames of a save leaves behind."""
    directory = Path(directory)
    # the last: a run being overwritten keeps its old model there until it has its own
    for cand in (directory, directory / "model", old_copy(directory / "model"),
                 old_copy(directory), directory / ".previous-run" / "model"):
        _refuse_odd_files(cand)
        if is_model_dir(cand):
            return cand
    if not directory.exists():
        raise ModelNotFound(f"{directory}: no such model directory")
    have = [p.name for p in directory.iterdir()][:8] if directory.is_dir() else []
    raise ModelNotFound(f"{directory}: not a gpner model directory (no config.json and "
                         "model.safetensors, nor a model/ folder holding them"
                         + (f"; it holds {have}" if have else "") + ")", code="E201")


def save_model(model: TaskModel, featurizer: Featurizer, config: ModelConfig,
               directory: str | Path, card: dict[str, Any] | None = None) -> None:
    """Write a model directory atomically (built beside ``directory``, then swapped in): also
    a transformers model directory (``architectures``, ``auto_map``, ``gpner_hf.py``, the
    encoder's config) with a model card ``README.md`` (``card``: what the trainer knows)."""
    from safetensors.torch import save_model as save_weights

    from gpner.model.encoders import HFEncoder

    extra: dict[str, Any] = {"architectures": [HF_ARCHITECTURE], "auto_map": dict(HF_AUTO_MAP)}
    hf = model.encoder.model if isinstance(model.encoder, HFEncoder) else None
    if hf is not None:  # in config.json too, so that transformers can build it
        config.encoder_config = hf.config.to_dict()
    with staged_dir(directory) as tmp:
        config.save(tmp, extra)
        save_weights(model, str(tmp / "model.safetensors"))
        featurizer.save(tmp)
        if hf is not None:
            hf.config.save_pretrained(str(tmp / "encoder"))
        (tmp / HF_REMOTE_CODE).write_text(HF_REMOTE_CODE_TEXT, encoding="utf-8")
        (tmp / "README.md").write_text(model_card(config, card or {}), encoding="utf-8")


def model_card(config: ModelConfig, card: dict[str, Any]) -> str:
    """The model directory's README.md: labels, data, scores, training command, usage."""
    enc = config.encoder.name or "the built-in encoder (word + bigram + character-CNN BiLSTM)"
    lines = ["---", "library_name: gpner", "pipeline_tag: token-classification",
             "tags: [gpner, globalpointer, ner, nested-ner]", "---", "",
             f"# gpner {config.task} model ({config.head})", "",
             f"GlobalPointer span extraction ({config.head} head) on {enc}; windows of "
             f"{config.max_length} tokens; {'flat' if config.decode.flat else 'nested'} decoding "
             f"at threshold {config.decode.threshold:g} by default.", "",
             f"**Labels** ({len(config.labels)}): " + ", ".join(f"`{x}`" for x in config.labels),
             ""]
    data = card.get("data") or {}
    if data:
        lines += ["**Data**: " + "; ".join(f"{k}: `{v}`" for k, v in data.items() if v), ""]
    if config.data:
        lines += ["**What the readers skipped**: see `data` in config.json.", ""]
    dev = card.get("dev")
    if dev:
        lines += [f"**Dev scores** (epoch {card.get('epoch')}, strict micro): "
                  f"P {dev['precision']:.4f}, R {dev['recall']:.4f}, F1 {dev['f1']:.4f}, "
                  f"macro F1 {dev['macro_f1']:.4f}.", ""]
    if card.get("command"):
        lines += ["**Trained with**:", "", "```bash", card["command"], "```", ""]
    lines += ["## Use", "", "```bash", "gpner predict DIR texts.txt > out.jsonl", "```", "",
              "```python", "import gpner", "model = gpner.load(DIR)",
              'model.predict(["your text"])', "", "# Hugging Face", "import gpner.hf",
              "from transformers import AutoModel, pipeline",
              "AutoModel.from_pretrained(DIR)  # or trust_remote_code=True without gpner.hf",
              'pipeline("gpner-ner", model=DIR)(["your text"])', "```", "",
              f"Written by gpner {__version__}; `config.json` holds every setting, including the "
              "full training config.", ""]
    return "\n".join(lines)


def build_encoder(spec: EncoderSpec, directory: Path | None = None,
                  encoder_config: dict | None = None) -> Encoder:
    """An encoder with random weights, shaped as ``spec`` says (weights are loaded after). A
    Hugging Face encoder's config comes from ``encoder_config`` (config.json) or, in model
    directories written before it was there, ``directory/encoder/``."""
    from gpner.model.encoders import BuiltinEncoder, HFEncoder
    from gpner.model.encoders import hf_config as config_of

    if spec.type == "builtin":
        return BuiltinEncoder(spec.sizes or {}, **(spec.params or {}))
    from transformers import AutoConfig, AutoModel

    if encoder_config:
        hf_config = config_of(encoder_config)
    elif directory is not None:
        hf_config = AutoConfig.from_pretrained(str(Path(directory) / "encoder"))
    else:
        raise ValueError("no encoder config: config.json has no encoder_config and no model "
                         "directory was given")
    return HFEncoder(AutoModel.from_config(hf_config))


def load_weights(model: Any, directory: Path, config: ModelConfig) -> None:
    """Load ``model.safetensors`` into ``model`` (names migrated from the config's format)."""
    path = Path(directory) / "model.safetensors"
    state = migrate_weights(read_safetensors(path), config.format_version)
    check_weights(model, state, path, config)
    model.load_state_dict(state, strict=True)


def read_safetensors(path: Path) -> dict[str, Any]:
    """Tensors of a safetensors file; a truncated or corrupt one is E205 naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelNotFound(f"{path}: missing", code="E207")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        size = path.stat().st_size
        raise ModelFileError(f"{path}: truncated or corrupt ({size} bytes; safetensors says: "
                             f"{exc}); copy the model directory again", code="E205") from None


def _check_values(model: Any, state: dict[str, Any], path: Path) -> None:
    """Each tensor of the model's dtype kind (floating weights stay floating: integer weights
    would make every score a whole number) and finite (NaN or inf would silence every span)."""
    import torch

    expected = model.state_dict()
    for name, tensor in state.items():
        want = expected[name]
        if want.is_floating_point() != tensor.is_floating_point():
            raise ModelFileError(f"{path}: tensor {name} is {tensor.dtype}, the model's is "
                                 f"{want.dtype}; the weights were not written by gpner",
                                 code="E208")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelFileError(f"{path}: tensor {name} holds {bad} values that are NaN or "
                                 "infinite; a model trained to NaN (lower the learning rate, "
                                 "or use the checkpoint of an earlier epoch)", code="E208")


def check_weights(model: Any, state: dict[str, Any], path: Path, config: ModelConfig) -> None:
    """The file's tensors must be the model's, with the same shapes (E206): a config.json whose
    label count was edited, or weights from another model, say so here."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if not (missing or extra or shapes):
        _check_values(model, state, path)
        return
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} tensor(s) of another shape (first: {k} is {got[k]} in the "
                     f"file, {expected[k]} for config.json)")
    if missing:
        parts.append(f"{len(missing)} missing (first: {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (first: {extra[0]})")
    raise ModelFileError(f"{path}: the weights do not match {path.parent / 'config.json'} "
                         f"({len(config.labels)} labels, head {config.head}): "
                         + "; ".join(parts) + ". Was config.json edited, or the weights copied "
                         "from another model?", code="E206")

"""Every refusal gpner makes, as one exception hierarchy with a stable code per kind.

``str(error)`` is ``"[E101] train.json:12: invalid JSON (...)"``: the code first, so a user can
search docs/errors.md for it, then the place (file and line, or the setting's name) and the
value. The codes are listed in :data:`CODES` (and in docs/errors.md, which a test keeps equal).

Each class also derives from the built-in exception a caller would catch without knowing gpner
(``ValueError``, ``FileNotFoundError``, ``TypeError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

# code -> what it means (one line); docs/errors.md explains each with its fix
CODES: dict[str, str] = {
    # data files
    "E101": "invalid JSON in a data file",
    "E102": "a data record does not have the expected structure",
    "E103": "a data file is not in the expected text encoding",
    "E104": "the format of a data file cannot be told; pass --format",
    "E105": "a forced --format finds nothing it can read in the file",
    "E106": "a record holds span-like data under keys gpner does not read",
    "E107": "a malformed line in a column or word/tag file",
    "E108": "a malformed entity or relation under --strict",
    "E109": "an unknown format name",
    "E110": "the output format cannot hold the data",
    "E111": "an input file or directory does not exist",
    "E112": "the data cannot train a model (no records, no entities)",
    "E113": "JSON nested too deeply to read",
    "E114": "gold and predicted records do not pair up",
    "E115": "gold data a score would mislead on (labels the model lacks, no gold entity)",
    # model directories
    "E201": "not a gpner model directory",
    "E202": "a model file is not valid JSON",
    "E203": "config.json lacks a key or holds a bad value",
    "E204": "the model was written by a newer gpner",
    "E205": "model.safetensors is truncated or corrupt",
    "E206": "the weights do not match config.json (tensor names or shapes, label count)",
    "E207": "a file the model needs is missing",
    "E208": "model weights that are not finite numbers of the model's dtype",
    "E209": "a model file that is not a regular file (a FIFO, a directory, a device)",
    # settings
    "E301": "an unknown setting",
    "E302": "a setting has a value of the wrong type",
    "E303": "a setting is out of its range",
    "E304": "a settings file is not valid YAML or not a mapping",
    "E305": "settings that cannot be used together",
    # run directories
    "E401": "the output directory holds a finished run",
    "E402": "nothing to resume in the run directory",
    "E403": "--resume given with options that the saved run overrides",
    "E404": "the output path is not a directory",
    # prediction inputs and API arguments
    "E501": "a bad input line under --strict",
    "E502": "an invalid argument to a gpner function",
    "E503": "a partial output that belongs to another input or other settings",
    "E504": "an output file another gpner run is writing",
    # environment
    "E601": "a file could not be written (disk full, permissions)",
    "E602": "an optional dependency is not installed",
}


class GpnerError(Exception):
    """Base of every gpner refusal; ``code`` is stable, ``message`` names place and value."""

    code = ""  # each subclass and raise site names its code

    def __init__(self, message: str, code: str | None = None):
        if code is not None:
            self.code = code
        if self.code not in CODES:  # a programming error: every code is documented
            raise AssertionError(f"undocumented gpner error code {self.code}")
        self.message = message
        super().__init__(f"[{self.code}] {message}")


class DataError(GpnerError, ValueError):
    """Input data that cannot be read; the message names file, line and value."""

    code = "E102"


class DataEncodingError(DataError):
    """Bytes that do not decode; the message names file, line and byte offset."""

    code = "E103"


class MissingFile(GpnerError, FileNotFoundError):
    """An input path that does not exist."""

    code = "E111"


class ModelFileError(GpnerError, ValueError):
    """A model directory that cannot be loaded; the message names the file and the problem."""

    code = "E203"


class ModelNotFound(ModelFileError, FileNotFoundError):
    """No model directory, or a file the model needs is not there."""

    code = "E201"


class ConfigError(GpnerError, ValueError):
    """A setting that is unknown, of the wrong type or out of range; names the key."""

    code = "E303"


class RunDirError(GpnerError, ValueError):
    """A run directory that cannot be used as asked (finished run, nothing to resume)."""

    code = "E401"


class InputError(GpnerError, ValueError):
    """A bad prediction input under ``strict``, or a bad argument value to the Python API."""

    code = "E501"


class ArgumentTypeError(GpnerError, TypeError):
    """An argument of the wrong type to the Python API; names the argument."""

    code = "E502"


class WriteFailed(GpnerError, OSError):
    """A file could not be written (a full disk, a quota, permissions); names the file. What was
    written before it is intact (every write is atomic)."""

    code = "E601"


class MissingDependency(GpnerError, ImportError):
    """An optional extra that a feature needs."""

    code = "E602"


__all__ = ["CODES", "GpnerError", "DataError", "DataEncodingError", "MissingFile",
           "ModelFileError", "ModelNotFound", "ConfigError", "RunDirError", "InputError",
           "ArgumentTypeError", "WriteFailed", "MissingDependency"]

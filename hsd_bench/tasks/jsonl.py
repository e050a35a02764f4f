"""Dataset records from a local JSONL file or the Hub, and deterministic selection.

Every task loads the same way: a local JSONL file when ``dataset.path`` is
set (clusters without Hub access, and the tests), otherwise the Hub dataset
through ``datasets.load_dataset`` (imported lazily, so nothing here needs
``datasets`` or the network unless it is actually used). Errors name the file
and line, or -- when the Hub is unreachable -- the ``dataset.path=...``
override that avoids it.

Selection (``limit``, ``seed``, ``ids``) must pick the *same* samples for
every method of a sweep and on every machine, so it depends only on the
sample ids and the seed: each id is ranked by a SHA-256 hash of
``"{seed}:{id}"`` and the ``limit`` smallest are kept. That is stable across
Python versions (unlike ``random.sample``), independent of the order of the
file, and a larger ``limit`` keeps every sample of a smaller one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


class DatasetError(ValueError):
    """A dataset file or config value is unusable; the message says where and why."""


@dataclass(frozen=True)
class HubSource:
    """Where a dataset lives on the Hugging Face Hub, and what its rows hold."""

    path: str  # e.g. "openai/gsm8k"
    name: str | None  # config name, e.g. "main"
    fields: tuple[str, ...]  # string columns every row must have (also the local JSONL schema)
    prompt_field: str | None = None  # the column the prompt is built from: blank in a local file is an error


def read_source_jsonl(path: str | Path, source: HubSource, key: str = "dataset.path") -> list[dict]:
    """A local JSONL in ``source``'s schema (its fields strings, its prompt field not blank)."""
    return read_jsonl(path, source.fields, (source.prompt_field,) if source.prompt_field else (), key=key)


def check_record(record: Any, where: str, fields: Sequence[str], nonblank: Sequence[str] = ()) -> dict:
    """``record`` if it is an object whose ``fields`` are strings (``nonblank`` ones not blank), else a
    :class:`DatasetError` naming ``where`` (``file:line`` or ``split row``) and the field."""
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in fields if k not in record]
    if missing:
        names = list(map(str, record))
        has = f"its fields: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}" if names else "it has no fields"
        other = " (a file of another dataset?)" if len(missing) == len(fields) else ""
        raise DatasetError(f"{where}: missing field(s) {', '.join(missing)} ({has}); "
                           f"valid: an object{_fields_hint(fields)}{other}")
    for k in fields:
        value = record[k]
        if not isinstance(value, str):
            raise DatasetError(f"{where}: field {k!r} is {_json_kind(value)} ({_short(value)}); valid: a string")
        if k in nonblank and not value.strip():
            raise DatasetError(f"{where}: field {k!r} is empty ({value!r}); valid: a non-empty prompt text")
    return record


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words (``12345`` is a number, not an ``int``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


# what null means for each dataset file key: the source used without a file
_PATH_DEFAULTS = {"path": "the dataset's default source (HumanEval's bundled copy, else the Hub)",
                  "fewshot_path": "dataset.fewshot_source"}


def path_from_cfg(cfg: Any, key: str = "path") -> str | None:
    """``dataset.<key>``, a file path: None when null; an empty string (an unset shell variable,
    ``dataset.path=$DATA``) is an error, not "use the default source" (run.py's validation calls it
    before loading anything, each task again when it loads)."""
    value = cfg_get(cfg, key)
    if isinstance(value, str) and not value.strip():
        raise DatasetError(f"dataset.{key}={value!r} is empty; valid: a JSONL file path, or null for "
                           f"{_PATH_DEFAULTS.get(key, 'the default')}")
    return value


def cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg.key`` for a DictConfig, dict or plain object; ``default`` when absent or null."""
    if cfg is None:
        return default
    if hasattr(cfg, "get") and callable(cfg.get):
        value = cfg.get(key, default)
    else:
        value = getattr(cfg, key, default)
    return default if value is None else value


def read_jsonl(
    path: str | Path, required_fields: Sequence[str] = (), nonblank: Sequence[str] = (), key: str = "dataset.path"
) -> list[dict]:
    """Every JSON object of a ``.jsonl`` (or ``.jsonl.gz``) file, in file order.

    Blank lines are skipped. A line that is not UTF-8 or not a JSON object, or
    whose ``required_fields`` are missing or not strings (``nonblank`` ones
    empty), raises :class:`DatasetError` naming ``key`` (the config key that
    gave the file) and ``path:line``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise DatasetError(
            f"{key}={str(path)!r} is a directory, not a file; valid: a JSONL file, "
            f"one JSON object per line{_fields_hint(required_fields)}"
        )
    if not path.is_file():
        raise DatasetError(
            f"dataset file {str(path)!r} does not exist (set {key} to an existing JSONL file, "
            f"one JSON object per line{_fields_hint(required_fields)})"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DatasetError(
                        f"{key}: {path}:{lineno}: not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1}); "
                        f"valid: a UTF-8 JSONL file"
                    ) from None
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DatasetError(f"{key}: {path}:{lineno}: malformed JSON line ({err.msg} at column {err.colno})") from None
                records.append(check_record(record, f"{key}: {path}:{lineno}", required_fields, nonblank))
    except (OSError, EOFError) as err:  # unreadable, or a .gz that is not gzip / is cut short
        raise DatasetError(f"{key}={str(path)!r}: cannot be read ({type(err).__name__}: {err})") from None
    if not records:
        raise DatasetError(f"{key}={str(path)!r} holds no records; valid: one JSON object per line")
    return records


def _fields_hint(fields: Sequence[str]) -> str:
    return f" with fields {', '.join(fields)}" if fields else ""


def load_hub_split(source: HubSource, split: str) -> list[dict]:
    """Rows of a Hub dataset split, or an error that names the local-JSONL override.

    Without Hub access ``datasets`` retries for ~25 s before failing unless
    ``HF_HUB_OFFLINE=1`` is set; either way the error below is what the user sees.
    """
    try:
        import datasets  # lazy: the Hub path is the only one that needs it

        rows = datasets.load_dataset(source.path, source.name, split=split)
    except Exception as err:  # noqa: BLE001 -- any failure here means "no Hub copy"
        config = f" (config {source.name!r})" if source.name else ""
        raise DatasetError(
            f"cannot load {source.path!r}{config}, split {split!r}, from the Hugging Face Hub "
            f"({type(err).__name__}: {err}). Without Hub access, give a local JSONL file instead: "
            f"dataset.path=/path/to/file.jsonl (one JSON object per line with fields "
            f"{', '.join(source.fields)}); docs/datasets.md shows how to export one."
        ) from None
    return [check_record(dict(row), f"{source.path!r} split {split!r} row {i}", source.fields) for i, row in enumerate(rows)]


def load_records(cfg: Any, source: HubSource, split: str | None = None) -> list[dict]:
    """The records for ``cfg`` (the ``dataset`` config node): ``cfg.path`` if set, else the Hub."""
    path = path_from_cfg(cfg)
    if path:
        return read_source_jsonl(path, source)
    return load_hub_split(source, split or cfg_get(cfg, "split", "test"))


def selection_rank(seed: int, sample_id: str) -> str:
    """The sort key that orders samples for ``seed`` (see the module docstring)."""
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()


def select(
    records: Sequence[dict],
    id_of: Callable[[int, dict], str],
    *,
    limit: int | None = None,
    seed: int | None = None,
    ids: Iterable[Any] | None = None,
) -> list[tuple[str, dict]]:
    """``(sample_id, record)`` pairs picked deterministically.

    * ``ids`` set: exactly those samples, in the order given (``limit`` still
      caps them); an unknown id is an error.
    * ``seed`` null: the first ``limit`` records in file order.
    * otherwise: the ``limit`` records with the smallest ``selection_rank``,
      returned in file order.
    """
    keyed = [(id_of(i, r), r) for i, r in enumerate(records)]
    by_id: dict[str, dict] = {}
    for sample_id, record in keyed:
        if sample_id in by_id:
            raise DatasetError(f"duplicate sample id {sample_id!r} in the dataset; sample ids must be unique")
        by_id[sample_id] = record
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise DatasetError(f"dataset.limit={limit!r} must be a non-negative integer or null (all samples)")
    if ids is not None:
        wanted = [str(x) for x in ids]
        unknown = [x for x in wanted if x not in by_id]
        if unknown:
            known = ", ".join(list(by_id)[:5])
            raise DatasetError(
                f"dataset.ids has {len(unknown)} unknown id(s): {', '.join(unknown[:5])}; ids look like: {known}, ..."
            )
        chosen = [(x, by_id[x]) for x in dict.fromkeys(wanted)]
        return chosen[:limit] if limit is not None else chosen
    if limit is None or limit >= len(keyed):
        return keyed
    if seed is None:
        return keyed[:limit]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"dataset.seed={seed!r} must be an integer or null (first samples in file order)")
    keep = set(sorted(range(len(keyed)), key=lambda i: selection_rank(seed, keyed[i][0]))[:limit])
    return [keyed[i] for i in sorted(keep)]


def select_from_cfg(records: Sequence[dict], id_of: Callable[[int, dict], str], cfg: Any) -> list[tuple[str, dict]]:
    """:func:`select` with ``limit``, ``seed`` and ``ids`` read from the ``dataset`` config node."""
    ids = cfg_get(cfg, "ids")
    return select(
        records,
        id_of,
        limit=_as_int(cfg_get(cfg, "limit"), "limit"),
        seed=_as_int(cfg_get(cfg, "seed"), "seed"),
        ids=list(ids) if ids is not None else None,
    )


def _as_int(value: Any, key: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise DatasetError(f"dataset.{key}={value!r} must be an integer or null")


def optional_int(cfg: Any, key: str, default: int, low: int, high: int | None = None) -> int:
    """An integer config value in ``[low, high]``, ``default`` when null; else a clear error."""
    value = _as_int(cfg_get(cfg, key), key)
    if value is None:
        return default
    if value < low or (high is not None and value > high):
        valid = f"{low}..{high}" if high is not None else f">= {low}"
        raise DatasetError(f"dataset.{key}={value} is out of range; valid: {valid}")
    return value


def stop_sequences_from_cfg(cfg: Any, default: Sequence[str]) -> list[str]:
    """``dataset.stop_sequences`` if set (``[]`` disables stopping), else the task's default."""
    value = cfg.get("stop_sequences") if hasattr(cfg, "get") else getattr(cfg, "stop_sequences", None)
    if value is None:
        return list(default)
    if isinstance(value, str) or not all(isinstance(s, str) and s for s in value):
        raise DatasetError(f"dataset.stop_sequences={value!r} must be a list of non-empty strings or null")
    return list(value)


FEWSHOT_SOURCES = ("builtin", "train")


def fewshot_records(cfg: Any, source: HubSource, builtin: Sequence[dict], n: int) -> list[dict]:
    """The ``n`` few-shot exemplars, never drawn from the evaluated split.

    ``dataset.fewshot_path`` (a local JSONL in the train split's schema) wins;
    else ``dataset.fewshot_source``: ``builtin`` (default; the task's fixed,
    offline exemplars) or ``train`` (the Hub train split). From a file or the
    train split the exemplars are the ``n`` smallest by ``selection_rank``
    under ``dataset.fewshot_seed`` (default 1234), the same for every sample.
    """
    if n == 0:
        return []
    path = path_from_cfg(cfg, "fewshot_path")
    kind = cfg_get(cfg, "fewshot_source", "builtin")
    if not path and kind not in FEWSHOT_SOURCES:
        raise DatasetError(f"dataset.fewshot_source={kind!r} is not one of {', '.join(FEWSHOT_SOURCES)}")
    if not path and kind == "builtin":
        if n > len(builtin):
            raise DatasetError(
                f"dataset.num_fewshot={n} but only {len(builtin)} builtin exemplars exist; valid: 0..{len(builtin)}, "
                f"or set dataset.fewshot_source=train / dataset.fewshot_path=<train JSONL> for more"
            )
        return list(builtin[:n])
    if not path and cfg_get(cfg, "split", "test") == "train" and not path_from_cfg(cfg):
        raise DatasetError("dataset.split=train with dataset.fewshot_source=train would draw exemplars from the evaluated split")
    records = read_source_jsonl(path, source, "dataset.fewshot_path") if path else load_hub_split(source, "train")
    if n > len(records):
        raise DatasetError(f"dataset.num_fewshot={n} but the few-shot source has only {len(records)} records")
    seed = _as_int(cfg_get(cfg, "fewshot_seed", 1234), "fewshot_seed")
    order = sorted(range(len(records)), key=lambda i: selection_rank(seed, str(i)))
    return [records[i] for i in order[:n]]


def check_disjoint(exemplars: Sequence[dict], samples: Sequence[dict], key: str) -> None:
    """Refuse a prompt whose few-shot exemplars include an evaluated sample (it would leak the answer)."""
    shown = {e[key] for e in exemplars}
    leaked = [s[key] for s in samples if s[key] in shown]
    if leaked:
        raise DatasetError(
            f"{len(leaked)} evaluated sample(s) also appear as few-shot exemplars (e.g. {leaked[0][:60]!r}); "
            f"take exemplars from another split (dataset.fewshot_source / dataset.fewshot_path)"
        )

"""PEFT / LoRA adapters: ``adapter_config.json`` + ``adapter_model.safetensors`` (or ``.bin``).

For every adapted module the update is ΔW = s·B·A with A = ``lora_A`` (r × in), B = ``lora_B``
(out × r) and s = α/r (α/√r with ``use_rslora``; ``rank_pattern``/``alpha_pattern`` override r
and α per module). Its spectrum has at most r non-zero eigenvalues. Rows:

* ``<module>.weight [delta]``: ΔW alone (shape of the base weight);
* given a base checkpoint: ``<module>.weight [merged]`` = W + ΔW and ``<module>.weight [base]``
  = W, where W is the base tensor of exactly that full name (``base_model.model.`` stripped).

Embedding adapters (``lora_embedding_A`` (r × num), ``lora_embedding_B`` (dim × r)) give
ΔW = s·(B·A)ᵀ, Conv adapters (A a kernel (r, in, k…), B (out, r, 1…)) give ΔW = s·B·A per kernel
position, and ``fan_in_fan_out`` (GPT-2 ``Conv1D``) stores ΔW transposed, like its base. The
factors themselves are listed as skipped (analysed through ΔW); other tensors of the adapter
(``modules_to_save``) are analysed as they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.errors import SourceError
from alphahat.sources.base import (
    FLOAT_DTYPES,
    TensorRef,
    WeightSource,
    open_regular_file,
    parse_json_bytes,
)
from alphahat.sources.safetensors_files import path_inside

Array = npt.NDArray[np.generic]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_PREFIX = "base_model.model."
_FACTOR = re.compile(
    r"^(?P<module>.+)\.lora_(?P<which>A|B|embedding_A|embedding_B)(\.[^.]+)?\.weight$"
)
_FACTOR_EMB = re.compile(r"^(?P<module>.+)\.lora_(?P<which>embedding_A|embedding_B)(\.[^.]+)?$")
#: largest adapter_config.json read (real ones are a few kB)
MAX_CONFIG_BYTES = 10_000_000


@dataclass(frozen=True)
class LoraConfig:
    """The parts of ``adapter_config.json`` that define ΔW."""

    r: int
    alpha: float
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    rank_pattern: Mapping[str, int] | None = None
    alpha_pattern: Mapping[str, float] | None = None

    def scale(self, module: str, rank: int) -> float:
        """The scale s = α/r (α/√r with rsLoRA), with per-module overrides."""
        alpha = _pattern_value(self.alpha_pattern, module, self.alpha)
        return float(alpha) / (math.sqrt(rank) if self.use_rslora else rank)

    def rank(self, module: str) -> int:
        """The rank r of this module (``rank_pattern`` first)."""
        return int(_pattern_value(self.rank_pattern, module, self.r))


def _pattern_value(pattern: Mapping[str, Any] | None, module: str, default: Any) -> Any:
    for key, value in (pattern or {}).items():
        if module == key or module.endswith(f".{key}") or re.fullmatch(rf"(.*\.)?{key}", module):
            return value
    return default


def _inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused when it is a symlink to a file outside ``folder``."""
    path = path_inside(folder, name)
    if path is None:
        raise SourceError(
            f"{folder / name}: a symlink to a file outside {folder}; refused (the adapter's "
            "files must lie in its folder)"
        )
    return path


def _checked_pattern(path: Path, key: str, raw: Any) -> dict[str, Any]:
    """``rank_pattern``/``alpha_pattern``: module patterns (valid regexes) → positive numbers."""
    value = raw or {}
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 2**31
        for v in value.values()
    ):
        raise SourceError(f"{path}: {key!r} must map module names to positive numbers")
    for pattern in value:
        if len(pattern) > 1000:
            raise SourceError(f"{path}: {key!r}: a module pattern of {len(pattern)} characters")
        try:
            re.compile(rf"(.*\.)?{pattern}")
        except (re.error, RecursionError, OverflowError) as exc:
            why = exc.msg if isinstance(exc, re.error) else type(exc).__name__
            raise SourceError(
                f"{path}: {key!r}: the module pattern {pattern[:80]!r} is not a valid regular "
                f"expression ({why})"
            ) from exc
    return value


def read_lora_config(path: Path) -> LoraConfig:
    """Validated LoRA settings from ``adapter_config.json`` (strict JSON, at most 10 MB)."""
    try:
        with open_regular_file(path) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise SourceError(f"{path}: over {MAX_CONFIG_BYTES} bytes; not an adapter config")
    raw = parse_json_bytes(data, path, "adapter config")
    if not isinstance(raw, dict):
        raise SourceError(f"{path}: not a JSON object")
    peft_type = str(raw.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise SourceError(f"{path}: peft_type {peft_type[:40]!r}: only LoRA adapters are supported")
    r, alpha = raw.get("r"), raw.get("lora_alpha")
    if not isinstance(r, int) or isinstance(r, bool) or not 0 < r < 2**31:
        raise SourceError(f"{path}: 'r' must be a positive integer; got {str(r)[:40]}")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not math.isfinite(alpha):
        raise SourceError(f"{path}: 'lora_alpha' must be a finite number; got {str(alpha)[:40]}")
    return LoraConfig(
        r=r,
        alpha=float(alpha),
        use_rslora=bool(raw.get("use_rslora", False)),
        fan_in_fan_out=bool(raw.get("fan_in_fan_out", False)),
        rank_pattern=_checked_pattern(path, "rank_pattern", raw.get("rank_pattern")),
        alpha_pattern=_checked_pattern(path, "alpha_pattern", raw.get("alpha_pattern")),
    )


def is_adapter_folder(folder: Path) -> bool:
    """A folder holding ``adapter_config.json``."""
    return (folder / ADAPTER_CONFIG).is_file()


def lora_delta(a: Array, b: Array, scale: float, embedding: bool, fan_in_fan_out: bool) -> Array:
    """ΔW = s·B·A (float64) in the base weight's layout."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if embedding:  # A (r, num), B (dim, r): the table is (num, dim)
        out: npt.NDArray[np.float64] = b64 @ a64
        out *= scale  # in place: one array of ΔW's size, not two
        return out.T
    if a64.ndim > 2:  # conv: A (r, in, k…), B (out, r, 1…)
        r = a64.shape[0]
        out = b64.reshape(b64.shape[0], r) @ a64.reshape(r, -1)
        out *= scale
        return out.reshape((b64.shape[0], *a64.shape[1:]))
    out = b64 @ a64
    out *= scale
    return out.T if fan_in_fan_out else out


def adapter_weights_file(folder: Path) -> Path:
    """The adapter's weight file in ``folder`` (``adapter_model.safetensors`` or ``.bin``)."""
    weights = next((f for f in ADAPTER_FILES if (folder / f).is_file()), None)
    if weights is None:
        raise SourceError(f"{folder}: an adapter folder without {' or '.join(ADAPTER_FILES)}")
    return _inside(folder, weights)


class LoraSource(WeightSource):
    """A PEFT LoRA adapter folder; with ``base``, merged and base views of each adapted module.

    ``adapter`` is the opened :func:`adapter_weights_file` (an ordinary checkpoint file).
    ``config`` given (an in-memory adapter, :func:`peft_model_source`): ``folder`` only names
    it, and no ``adapter_config.json`` is read.
    """

    def __init__(
        self,
        folder: Path,
        adapter: WeightSource,
        base: WeightSource | None = None,
        config: LoraConfig | None = None,
    ) -> None:
        self.folder = folder
        self.base = base
        try:
            self.config = config or read_lora_config(_inside(folder, ADAPTER_CONFIG))
        except BaseException:
            adapter.close()
            raise
        self.adapter = adapter
        self.description = f"LoRA adapter {folder}" + (f" on {base.description}" if base else "")
        config_file = () if config is not None else (folder / ADAPTER_CONFIG,)
        self.files = (*config_file, *self.adapter.files, *(base.files if base else ()))
        self._refs = self._build()

    def _build(self) -> list[TensorRef]:
        factors: dict[str, dict[str, TensorRef]] = {}
        others: list[TensorRef] = []
        for ref in self.adapter.tensors():
            match = _FACTOR.match(ref.name) or _FACTOR_EMB.match(ref.name)
            if match is None:
                others.append(ref)
                continue
            parts = factors.setdefault(match["module"], {})
            parts[match["which"].removeprefix("embedding_")] = ref
            if match["which"].startswith("embedding"):
                parts["embedding"] = ref
        base_refs = {r.name: r for r in self.base.tensors()} if self.base is not None else {}
        refs: list[TensorRef] = []
        for module, parts in factors.items():
            for which in ("A", "B"):
                if which in parts:
                    reason = f"LoRA factor {which} of {module}: analysed through ΔW = s·B·A"
                    refs.append(_with_skip(parts[which], reason))
            refs.extend(self._views(module, parts, base_refs))
        refs.extend(_renamed(ref, ref.name.removeprefix(_PREFIX)) for ref in others)
        return refs

    def _views(
        self, module: str, parts: dict[str, TensorRef], base_refs: Mapping[str, TensorRef]
    ) -> list[TensorRef]:
        target = module.removeprefix(_PREFIX) + ".weight"
        origin = str(self.folder)
        a, b = parts.get("A"), parts.get("B")
        if a is None or b is None:
            missing = "lora_A" if a is None else "lora_B"
            return [_failed(f"{target} [delta]", origin, f"{missing} missing from the adapter")]
        embedding = "embedding" in parts
        problem = _factor_problem(a, b, embedding)
        rank = a.shape[0] if a.ndim else 0
        expected_rank = self.config.rank(module.removeprefix(_PREFIX))
        if problem is None and rank != expected_rank:
            problem = f"lora_A has rank {rank} but the config says r={expected_rank}"
        if problem is not None:
            return [_failed(f"{target} [delta]", origin, problem)]
        scale = self.config.scale(module.removeprefix(_PREFIX), rank)
        fan = self.config.fan_in_fan_out and not embedding
        shape: tuple[int, ...]
        if embedding:
            shape = (a.shape[1], b.shape[0])
        elif a.ndim > 2:
            shape = (b.shape[0], *a.shape[1:])
        else:
            shape = (a.shape[1], b.shape[0]) if fan else (b.shape[0], a.shape[1])
        kind = "embedding" if embedding else ("linear" if len(shape) == 2 else None)
        how = f"LoRA ΔW = {scale:g}·B·A (r={rank})" + ("ᵀ" if embedding or fan else "")

        def delta() -> Array:
            return lora_delta(a.load(), b.load(), scale, embedding, fan)

        views = [TensorRef(f"{target} [delta]", shape, "float64", delta, kind, origin, note=how)]
        if self.base is None:
            return views
        base = base_refs.get(target)
        if base is None:
            reason = f"no tensor named {target!r} in the base checkpoint (matched by full name)"
            return [*views, _failed(f"{target} [merged]", origin, reason)]
        if base.shape != shape or base.problem is not None:
            reason = base.problem or (
                f"base weight {list(base.shape)} does not match ΔW {list(shape)}"
            )
            return [*views, _failed(f"{target} [merged]", origin, reason)]
        base_kind = base.module_kind or kind

        def merged() -> Array:
            out = np.asarray(delta(), dtype=np.float64)
            out += np.asarray(base.load(), dtype=np.float64)  # in place: no third copy
            return out

        return [
            *views,
            TensorRef(f"{target} [merged]", shape, "float64", merged, base_kind, origin,
                      note=f"W + ΔW ({how})"),
            _renamed(base, f"{target} [base]", note="base W (no adapter)"),
        ]  # fmt: skip

    def tensors(self) -> Iterator[TensorRef]:
        """Factors (skipped), ΔW views, then the adapter's other tensors."""
        return iter(self._refs)

    def close(self) -> None:
        """Close the adapter and base sources."""
        self.adapter.close()
        if self.base is not None:
            self.base.close()


def peft_model_source(model: Any, *, with_base: bool) -> LoraSource:
    """The :class:`LoraSource` of a ``peft`` LoRA model in memory (its active adapter).

    The adapter's factors are its parameters ``….lora_A.<adapter>.weight`` /
    ``….lora_B.<adapter>.weight`` (and the embedding ones); the settings (r, α, rsLoRA,
    ``fan_in_fan_out``, the patterns) come from ``model.peft_config[<adapter>]``. With
    ``with_base``, the base weights are the model's other parameters, a wrapped layer's
    ``….base_layer.weight`` standing for its ``….weight``.

    Raises:
        alphahat.errors.SourceError: not a LoRA model of the ``peft`` package.
    """
    from alphahat.sources.arrays import MappingSource

    configs = getattr(model, "peft_config", None)
    adapter_name = getattr(model, "active_adapter", None)
    if not isinstance(configs, Mapping) or not isinstance(adapter_name, str):
        raise SourceError(f"{type(model).__name__}: not a peft model (no peft_config)")
    settings = configs.get(adapter_name)
    peft_type = str(getattr(getattr(settings, "peft_type", None), "value", "")).upper()
    if settings is None or peft_type != "LORA":
        raise SourceError(f"adapter {adapter_name!r}: only LoRA adapters are supported")
    config = LoraConfig(
        r=int(settings.r),
        alpha=float(settings.lora_alpha),
        use_rslora=bool(getattr(settings, "use_rslora", False)),
        fan_in_fan_out=bool(getattr(settings, "fan_in_fan_out", False)),
        rank_pattern=dict(getattr(settings, "rank_pattern", None) or {}),
        alpha_pattern=dict(getattr(settings, "alpha_pattern", None) or {}),
    )
    factors: dict[str, Any] = {}
    base: dict[str, Any] = {}
    for name, value in model.named_parameters():
        if ".lora_" in name:
            if f".{adapter_name}." in f"{name}." or name.endswith(f".{adapter_name}"):
                factors[name] = value
        else:
            base[name.removeprefix(_PREFIX).replace(".base_layer.", ".")] = value
    adapter = MappingSource(factors, description=f"peft model, adapter {adapter_name!r}")
    base_source = MappingSource(base, description="its base weights") if with_base else None
    return LoraSource(Path(f"<peft adapter {adapter_name}>"), adapter, base_source, config)


def _factor_problem(a: TensorRef, b: TensorRef, embedding: bool) -> str | None:
    if a.problem or b.problem:
        return a.problem or b.problem
    if a.dtype not in FLOAT_DTYPES or b.dtype not in FLOAT_DTYPES:
        return f"LoRA factors of dtype {a.dtype}/{b.dtype}, not floats"
    if a.ndim < 2 or b.ndim < 2 or a.ndim != b.ndim:
        return f"LoRA factors of shapes {list(a.shape)} and {list(b.shape)}"
    if b.shape[1] != a.shape[0] or any(d != 1 for d in b.shape[2:]):
        return f"lora_B {list(b.shape)} does not multiply lora_A {list(a.shape)}"
    return None


def _renamed(ref: TensorRef, name: str, note: str = "") -> TensorRef:
    return replace(ref, name=name, note="; ".join(filter(None, [ref.note, note])))


def _with_skip(ref: TensorRef, reason: str) -> TensorRef:
    return replace(ref, skip_reason=ref.skip_reason or reason)


def _failed(name: str, origin: str, reason: str) -> TensorRef:
    def load() -> Array:
        raise SourceError(f"{origin}: {name}: {reason}")

    loader: Callable[[], Array] = load
    return TensorRef(name, (), "unknown", loader, None, origin, problem=reason)

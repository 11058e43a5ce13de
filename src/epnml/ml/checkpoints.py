"""Committed model weights: checksums, versions, and the checked way to pick a file.

Every model keeps ``ml/weights/<name>-<version>.pt`` next to a JSON card carrying
the file's sha256; loaders refuse weights whose card is missing or disagrees, so a
swapped or truncated file never silently writes different catalogue rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from epnml.config import models_dir
from epnml.ml.model_info import ModelInfo

if TYPE_CHECKING:
    from torch import nn

#: the entries every checkpoint has; anything else is ``Checkpoint.extra``.
_CORE_KEYS = frozenset({"name", "version", "config", "state_dict"})
#: where the committed weights and their JSON cards live (``<name>-<version>.pt/.json``).
WEIGHTS_DIR = models_dir() / "weights"


class ConfigDict:
    """``to_dict`` / ``from_dict`` for a dataclass of architecture hyper-parameters, saved
    in the checkpoint as plain types (``weights_only`` loading): the integer-tuple fields
    named in ``INT_TUPLES`` travel as lists; unknown or missing-required keys are a
    ValueError."""

    INT_TUPLES: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        for key in self.INT_TUPLES:
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        kw = dict(d)
        for key in cls.INT_TUPLES:
            if key in kw:
                kw[key] = tuple(int(r) for r in kw[key])
        try:
            return cls(**kw)
        except TypeError as exc:
            raise ValueError(f"invalid model config: {exc}") from exc


@dataclass
class LoadedNet:
    """A ready-to-run network, its provenance and the settings chosen with it (the mounds
    U-Net and the ice CNN; the other cases add a scaler or post-processing of their own)."""

    module: nn.Module
    info: ModelInfo
    config: dict[str, Any]

    @property
    def threshold(self) -> float:
        """Probability threshold chosen on the validation scenes."""
        return float(self.config.get("threshold", 0.5))


def cap_threads(max_threads: int) -> None:
    """At most ``max_threads`` torch threads for inference (a worker per core otherwise
    contends with itself)."""
    import torch

    if torch.get_num_threads() > max_threads:
        torch.set_num_threads(max_threads)


def committed_card(name: str, version: str, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The JSON model card committed next to the weights of ``name`` ``version``; ``{}``
    for weights given by path without a card."""
    path = weights_dir / f"{name}-{version}.json"
    card: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return card


def has_test_figures(card: Mapping[str, Any]) -> bool:
    """Whether a model card already records its test-split figures: the test split is
    scored once per version, so experiment commands refuse to score or write it again."""
    metrics = card.get("metrics") or {}
    return "test" in metrics


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Numeric-aware sort key so 1.10.0 is newer than 1.9.0."""
    parts = re.split(r"[.+-]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def weights_pattern(name: str, *, digit_first: bool = True) -> re.Pattern[str]:
    """``<name>-<version>.pt``; digit_first keeps e.g. ``crossings-baseline-*`` out."""
    version = r"\d[0-9A-Za-z.+-]*" if digit_first else r"[0-9A-Za-z.+-]+"
    return re.compile(rf"^{re.escape(name)}-(?P<version>{version})\.pt$")


def available_versions(name: str, weights_dir: Path,
                       pattern: re.Pattern[str] | None = None) -> list[str]:
    """Versions with both a weights file and its JSON card, oldest first."""
    if not weights_dir.is_dir():
        return []
    regex = pattern or weights_pattern(name)
    found = []
    for p in weights_dir.glob(f"{name}-*.pt"):
        m = regex.match(p.name)
        if m and p.with_suffix(".json").is_file():
            found.append(m.group("version"))
    return sorted(found, key=version_key)


def resolve_weights(name: str, version: str | None, path: Path | None, default_dir: Path,
                    pattern: re.Pattern[str] | None = None) -> Path:
    """The ``.pt`` to load: ``path`` (a file or a directory) or ``default_dir``, newest
    version unless ``version`` is given."""
    if path is not None and Path(path).is_file():
        pt = Path(path)
        if version is not None and pt.name != f"{name}-{version}.pt":
            raise ValueError(f"version {version!r} does not match weights file {pt.name}")
        return pt
    wdir = Path(path) if path is not None else default_dir
    if path is not None and not wdir.exists():
        raise FileNotFoundError(f"no such weights file or directory: {wdir}")
    versions = available_versions(name, wdir, pattern)
    if version is None:
        if not versions:
            raise FileNotFoundError(f"no {name} weights (with JSON card) in {wdir}")
        version = versions[-1]
    elif version not in versions:
        raise ValueError(
            f"unknown {name} model version {version!r}; available: "
            f"{', '.join(versions) if versions else 'none'} (in {wdir})"
        )
    return wdir / f"{name}-{version}.pt"


def verify_card(pt: Path) -> tuple[dict[str, Any], str]:
    """The JSON card next to ``pt`` and the file's sha256, after checking they agree."""
    card_path = pt.with_suffix(".json")
    if not card_path.is_file():
        raise ValueError(
            f"{pt}: model card {card_path.name} is missing; refusing unverified weights"
        )
    card: dict[str, Any] = json.loads(card_path.read_text())
    digest = sha256_file(pt)
    if card.get("sha256") != digest:
        raise ValueError(
            f"{pt}: sha256 {digest} does not match card {card_path.name} ({card.get('sha256')})"
        )
    return card, digest


@dataclass
class Checkpoint:
    """A checked, loaded ``<name>-<version>.pt``: the module (eval mode, float32), its
    provenance, the checkpoint's config and any further entries it carries (``scaler``)."""

    module: Any
    info: ModelInfo
    config: dict[str, Any]
    extra: dict[str, Any]


def read_checkpoint(name: str, version: str | None, path: Path | None,
                    build: Callable[[dict[str, Any]], Any], weights_dir: Path = WEIGHTS_DIR,
                    *, pattern: re.Pattern[str] | None = None,
                    require: Sequence[str] = ()) -> Checkpoint:
    """Load ``<name>-<version>.pt`` (default newest) after its sha256 check: the module
    built by ``build(config["model"])``. ValueError when the file is not that model's
    checkpoint, its card names another version or it lacks an entry of ``require`` (a
    feature scaler: the model is useless without it). ``pattern`` picks which files are
    versions (default :func:`weights_pattern`)."""
    import torch

    pt = resolve_weights(name, version, path, weights_dir, pattern or weights_pattern(name))
    card, digest = verify_card(pt)
    ckpt = torch.load(pt, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or ckpt.get("name") != name:
        raise ValueError(f"{pt}: not a {name} checkpoint")
    module = build(ckpt["config"]["model"])
    module.load_state_dict({k: v.float() if v.is_floating_point() else v
                            for k, v in ckpt["state_dict"].items()})
    module.eval()
    ver = str(ckpt.get("version"))
    if card.get("version") != ver:
        raise ValueError(f"{pt}: card version {card.get('version')} != weights version {ver}")
    extra = {k: v for k, v in ckpt.items() if k not in _CORE_KEYS}
    for key in require:
        if key not in extra:
            raise ValueError(f"{name}-{ver}.pt: checkpoint has no {key}")
    return Checkpoint(module, ModelInfo(name, ver, digest), dict(ckpt["config"]), extra)


def load_checkpoint(name: str, version: str | None, path: Path | None,
                    build: Callable[[dict[str, Any]], Any], weights_dir: Path = WEIGHTS_DIR
                    ) -> tuple[Any, ModelInfo, dict[str, Any]]:
    """:func:`read_checkpoint` as ``(module, info, config)``."""
    ckpt = read_checkpoint(name, version, path, build, weights_dir)
    return ckpt.module, ckpt.info, ckpt.config


def save_checkpoint(path: Path, name: str, version: str, module: Any, config: dict[str, Any],
                    *, half: bool, extra: dict[str, Any] | None = None) -> str:
    """Write ``<name>-<version>.pt`` (state_dict + config with ``module.config`` as
    ``model``, and ``extra`` entries such as a feature scaler; plain types only, so
    ``torch.load(weights_only=True)`` reads it; ``half`` stores floats as float16 to keep
    committed files small); returns its sha256."""
    import torch

    if path.name != f"{name}-{version}.pt":
        raise ValueError(f"weights file must be named {name}-{version}.pt, got {path.name}")
    cfg = dict(config)
    cfg["model"] = module.config.to_dict()
    state = module.state_dict()  # full precision keeps its module-version metadata
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    clash = _CORE_KEYS & set(extra or {})
    if clash:
        raise ValueError(f"extra checkpoint entries may not be named {sorted(clash)}")
    torch.save({"name": name, "version": version, "config": cfg, **(extra or {}),
                "state_dict": state}, path)
    return sha256_file(path)

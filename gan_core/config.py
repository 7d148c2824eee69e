"""The experiment config: frozen, typed sections loaded from YAML over defaults.

A config file is a short diff from the defaults below. Unknown keys, wrong types and
impossible values fail at load time with ``file: key: message``, before any work starts.
Besides the shared sections, each model family has a section of its own (``dcgan:``, ``mlp:``,
``diffusion:``: ``gan_core.families``); the one of ``model.arch`` is ``Config.family``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, Union

import yaml

from . import families
from .evaluators import SHIPPED as SHIPPED_EVALUATORS
from .rundir import write_atomic


# settings that change how or where a run executes, not what it computes (not in a run's key)
RUNTIME_KEYS = {"train.threads", "train.progress", "train.tensorboard", "train.compile", "eval.cache_dir"}


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, key and value."""


@dataclass(frozen=True)
class DataConfig:
    name: Literal["fashion-mnist", "mnist", "digits", "cifar10", "flowers102", "imagefolder"] = "fashion-mnist"
    # None: the data set's default place (Debian's for fashion-mnist, else data/); a relative
    # root is relative to the repository, wherever the command or notebook runs
    root: str | None = None
    download: bool = False  # fetch a missing data set (Fashion-MNIST, torchvision's sets; needs internet)
    split: Literal["train", "test"] = "train"
    image_size: int = 28  # images are resized to this; each model.arch says which sizes it builds
    channels: int | None = None  # None: the data set's own (1 or 3); else converted to 1 or 3
    subset: int | None = None  # keep N images
    subset_mode: Literal["first", "random"] = "first"  # random: a fixed subset drawn with train.seed
    classes: tuple[Union[int, str], ...] | None = None  # keep only these classes (ids or names)
    center_crop: bool = True  # image folders: resize the short side, then crop the centre
    hflip: bool = False  # image folders: random horizontal flips
    vflip: bool = False  # image folders: random vertical flips
    workers: int = 0  # DataLoader workers for image folders


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "dcgan"  # a registered family (gan_core.families): dcgan, mlp, ddpm; its settings: its own section
    latent_dim: int = 100
    conditional: bool = False  # class-conditional model (a GAN: the label joins z and D's input)
    embed_dim: int = 0  # conditional: 0 for a one-hot label, else a learned embedding of this width


# settings that moved into a family's own section, and where they are now
MOVED = {f"model.{key}": f"dcgan.{key}" for key in ("ngf", "ndf", "d_norm")} | \
        {f"model.{key}": f"mlp.{key}" for key in ("g_hidden", "d_hidden", "d_dropout")}


@dataclass(frozen=True)
class LossConfig:
    kind: Literal["bce", "mse", "hinge", "wgan-gp"] = "bce"  # bce: non-saturating; mse: LSGAN; hinge; wgan-gp
    real_label: float = 1.0  # 0.9 is one-sided label smoothing (Salimans et al. 2016)
    gp_weight: float = 10.0  # wgan-gp: weight of the gradient penalty (Gulrajani et al. 2017)
    r1: float = 0.0  # gamma of the R1 penalty gamma/2 E||grad D(x)||^2 on real images (Mescheder et al. 2018); 0: off
    r1_every: int = 16  # compute R1 every this many D steps, scaled up to match (lazy, Karras et al. 2020)


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["adam", "sgd"] = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Radford et al. 2015
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0  # sgd only


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    steps: int | None = None  # a budget in steps instead: train this many, the last epoch in part; None: all epochs
    batch_size: int = 128
    seed: int = 0
    sample_every: int = 1  # epochs between fixed-noise grids (one is always drawn at the end)
    checkpoint_every: int = 1  # epochs between checkpoints (one is always written at the end)
    log_every: int = 50  # steps between rows of log.csv
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # auto: on CUDA the fastest of fp32/TF32 and bf16 autocast, NCHW and channels_last, timed on
    # the device once per model shape (docs/gpu.md); on a CPU bf16 autocast (+ channels_last) where
    # it computes bf16 natively (avx512_bf16/AMX), fp32 elsewhere (bf16 emulated is slower)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # fp16: CUDA only
    channels_last: bool | Literal["auto"] = "auto"
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    num_samples: int = 64  # images in each fixed-noise grid
    progress: bool = True  # tqdm bar
    tensorboard: bool = False  # also write the logged values and grids to RUN/tensorboard/ (optional package)
    n_critic: int = 1  # D (critic) steps per G step, each on its own batch (wgan-gp: 5)
    ema: float = 0.0  # decay of an exponential moving average of G's weights (e.g. 0.999); 0: off
    # the average's half-life as a share of the images seen so far (e.g. 0.05, Karras et al. 2020):
    # it grows with training instead of a fixed decay; 0: off (train.ema, if set)
    ema_halflife: float = 0.0
    lr_decay: Literal["none", "linear", "cosine"] = "none"  # every learning rate falls to 0 at the last step
    grad_clip: float = 0.0  # clip each network's gradient norm to this before its step; 0: off
    compile: bool = False  # torch.compile the networks, in NCHW (compile time against speed: docs/reference/performance.md)
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs, annealed linearly to 0; 0: off


@dataclass(frozen=True)
class EvalConfig:
    samples: int = 10000  # generated and real images per score (the test split caps the real side)
    checkpoint_samples: int = 2000  # per saved checkpoint, for the quality-over-training curve
    nearest_k: int = 5  # k of the k-NN manifolds (precision/recall, density/coverage)
    kid_subset: int = 1000  # KID subset size (capped at the sample count)
    # auto: the evaluator shipped for the data set (fashion-mnist, digits: the same on every
    # machine), else one trained here; train: always train one here (with the two settings below)
    evaluator: Literal["auto", "shipped", "train"] = "auto"
    # a trained evaluator's epochs (part of its cache key); null: its recipe's (3 for a labelled set's
    # classifier, 2 for one trained from an image folder's own images)
    evaluator_epochs: int | None = None
    evaluator_subset: int | None = None  # train the evaluator on N random training images
    cache_dir: str = "~/.cache/gan-workbook"  # trained evaluators, test features and floors, by key


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim_g: OptimConfig = field(default_factory=OptimConfig)
    optim_d: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    family: Any = None  # the settings of model.arch's family (its section, e.g. dcgan:), None if it has none

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as written to config.yaml: the family's settings
        under its section's name, after the model section."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name != "family":
                out[f.name] = dataclasses.asdict(getattr(self, f.name))
            if f.name == "model" and self.family is not None:
                out[families.family_of(self.model.arch).section] = dataclasses.asdict(self.family)
        return json.loads(json.dumps(out))

    def hash(self) -> str:
        """Stable 12-hex-digit hash of the resolved config."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def replace(self, overrides: dict[str, Any], source: str = "overrides") -> "Config":
        """A new config with dotted-key overrides (``{"train.epochs": 3}``) applied."""
        return from_dict(merge(self.to_dict(), unflatten(overrides)), source)


def class_index(name: int | str, classes: Sequence[str], where: str) -> int:
    """The id of a class given by name or id (``"Sneaker"``, ``7`` or ``"7"``) among ``classes``
    (names in id order); a name wins (image folders may be named 1, 10, 100 ...).

    Raises:
        ConfigError: no such class; ``where`` names the setting, the message the classes there are.
    """
    if str(name) in classes:
        return list(classes).index(str(name))
    if str(name).isdigit() and int(name) < len(classes):
        return int(name)
    raise ConfigError(f"{where}: {name!r} is not a class (classes: {list(classes)})")


def unflatten(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(path: str | Path, overrides: dict[str, Any] | None = None, origin: str = "--set") -> Config:
    """Load a YAML config over the defaults, apply dotted-key overrides, validate.

    Errors name the file, and ``origin`` with the overridden keys when there are overrides.
    """
    path = Path(path)
    raw = read_yaml(path, "config")
    source = f"{path} with {origin} {', '.join(overrides)}" if overrides else str(path)
    return from_dict(merge(raw, unflatten(overrides or {})), source)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (YAML would keep only the last one)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """YAML text as Python values, duplicate keys refused (yaml.YAMLError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def read_yaml(path: Path, kind: str) -> dict[str, Any]:
    """A YAML file's top-level mapping; a missing, empty or duplicate-keyed file or bad YAML
    raises ConfigError naming it."""
    try:
        raw = parse_yaml(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{path}: no such {kind} file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        raise ConfigError(f"{path}: the {kind} file is empty (or only comments); an empty config would run every "
                          f"default silently: write the settings you mean, e.g. start from params/quick.yaml")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


FORMER_EVALUATOR_EPOCHS = 3  # eval.evaluator_epochs's default before it became null (its recipe's own)


def _without_former_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` without what an older gan_core wrote as a default and this one refuses: every
    run's config.yaml and checkpoint before eval.evaluator_epochs became null say 3, which a
    shipped evaluator's config may not set. A copy; ``raw`` is left as it is."""
    raw, e = dict(raw), raw.get("eval")
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    if (isinstance(e, dict) and e.get("evaluator_epochs") == FORMER_EVALUATOR_EPOCHS and e.get("evaluator") != "train"
            and data.get("name", DataConfig.name) in SHIPPED_EVALUATORS):
        raw["eval"] = {k: v for k, v in e.items() if k != "evaluator_epochs"}
    return raw


def from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Build and validate a Config from a nested dict; errors name ``source: key``. Every
    family section given is checked; the one of ``model.arch`` becomes ``Config.family``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: config must be a mapping (got {raw!r})")
    for old, new in MOVED.items():
        section, key = old.split(".")
        if isinstance(raw.get(section), dict) and key in raw[section]:
            raise ConfigError(f"{source}: {old} is now {new} (the family's own section): write "
                              f"'{new.split('.')[0]}: {{{key}: {raw[section][key]!r}}}'")
    raw = _without_former_defaults(raw)
    given = {name: raw.pop(name) for name in list(raw) if name in families.sections()}
    config = _build(Config, {k: v for k, v in raw.items() if k != "family"}, source, "", extra=families.sections())
    try:
        family = families.family_of(config.model.arch)
    except KeyError as err:
        raise ConfigError(f"{source}: {err.args[0]}") from None
    settings = {name: _build(spec.settings, section, source, f"{name}.") for name, spec in families.sections().items()
                if (section := given.get(name)) is not None}
    if family.settings is not None:
        config = dataclasses.replace(config, family=settings.get(family.section) or family.settings())
    _check_values(config, source)
    if problem := family.check(config):
        raise ConfigError(f"{source}: {problem}")
    return config


def _build(cls: type, raw: Any, source: str, prefix: str, extra: dict[str, Any] | None = None) -> Any:
    """``cls`` from the mapping ``raw``, every value checked against its type; ``extra``: more
    names a top-level config may hold (the family sections)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping (got {raw!r})")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "family"}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            known = ", ".join([*fields, *(extra or {})])
            raise ConfigError(f"{source}: unknown key {prefix}{key} (known: {known})")
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, source, f"{prefix}{name}.")
        else:
            values[name] = _coerce(value, hint, source, prefix + name)
    return cls(**values)


def _coerce(value: Any, hint: Any, source: str, key: str) -> Any:
    """Check ``value`` against a type hint; ints become floats where a float is wanted."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(value, arg, source, key)
            except ConfigError:
                continue
        raise ConfigError(f"{source}: {key} must be {_describe(hint)} (got {value!r})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(map(repr, args))} (got {value!r})")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list (got {value!r})")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], source, key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{source}: {key} must have {len(args)} items (got {value!r})")
        return tuple(_coerce(v, a, source, key) for v, a in zip(value, args))
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{source}: {key} must be null (got {value!r})")
        return None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "2e-4" as a string
            value = float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {key} must be a finite number (got {value!r})")
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{source}: {key} must be {_describe(hint)} (got {value!r})")
    return value


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    if hint in names:
        return names[hint]
    args = typing.get_args(hint)
    return " or ".join(_describe(a) if a in names else str(a) for a in args) or str(hint)


def _check_values(c: Config, source: str) -> None:
    """Value checks that types cannot express."""

    def need(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            raise ConfigError(f"{source}: {key} {rule} (got {value!r})")

    need(c.data.image_size > 0, "data.image_size", "must be > 0", c.data.image_size)
    need(c.data.channels in (None, 1, 3), "data.channels", "must be 1, 3 or null", c.data.channels)
    need(c.data.subset is None or c.data.subset > 0, "data.subset", "must be > 0", c.data.subset)
    need(c.data.workers >= 0, "data.workers", "must be >= 0", c.data.workers)
    need(c.data.name != "imagefolder" or c.data.root is not None, "data.root",
         "must name the folder of images when data.name is imagefolder", c.data.root)
    need(c.model.latent_dim > 0, "model.latent_dim", "must be > 0", c.model.latent_dim)
    need(c.model.embed_dim >= 0, "model.embed_dim", "must be >= 0 (0: one-hot)", c.model.embed_dim)
    need(0.0 < c.loss.real_label <= 1.0, "loss.real_label", "must be in (0, 1]", c.loss.real_label)
    need(c.loss.kind in ("bce", "mse") or c.loss.real_label == 1.0, "loss.real_label",
         f"must be 1.0 with the {c.loss.kind} loss (label smoothing is for bce and mse)", c.loss.real_label)
    need(c.loss.r1 >= 0, "loss.r1", "must be >= 0", c.loss.r1)
    need(c.loss.r1_every > 0, "loss.r1_every", "must be > 0", c.loss.r1_every)
    need(c.loss.gp_weight >= 0, "loss.gp_weight", "must be >= 0", c.loss.gp_weight)
    need(c.train.n_critic > 0, "train.n_critic", "must be > 0", c.train.n_critic)
    need(0.0 <= c.train.ema < 1.0, "train.ema", "must be in [0, 1)", c.train.ema)
    need(0.0 <= c.train.ema_halflife <= 1.0, "train.ema_halflife", "must be a share in [0, 1]", c.train.ema_halflife)
    need(not (c.train.ema and c.train.ema_halflife), "train.ema_halflife",
         f"and train.ema = {c.train.ema} both set the average of G: choose one", c.train.ema_halflife)
    need(c.train.grad_clip >= 0, "train.grad_clip", "must be >= 0", c.train.grad_clip)
    need(c.train.instance_noise >= 0, "train.instance_noise", "must be >= 0", c.train.instance_noise)
    for net in ("optim_g", "optim_d"):
        opt: OptimConfig = getattr(c, net)
        need(opt.lr > 0, f"{net}.lr", "must be > 0", opt.lr)
        need(all(0.0 <= b < 1.0 for b in opt.betas), f"{net}.betas", "must be in [0, 1)", list(opt.betas))
        need(opt.eps > 0, f"{net}.eps", "must be > 0", opt.eps)
        need(opt.weight_decay >= 0, f"{net}.weight_decay", "must be >= 0", opt.weight_decay)
        need(opt.momentum >= 0, f"{net}.momentum", "must be >= 0", opt.momentum)
    t = c.train
    for key in ("epochs", "batch_size", "sample_every", "checkpoint_every", "log_every", "num_samples"):
        need(getattr(t, key) > 0, f"train.{key}", "must be > 0", getattr(t, key))
    need(t.threads >= 0, "train.threads", "must be >= 0", t.threads)
    need(t.steps is None or t.steps > 0, "train.steps", "must be > 0 or null", t.steps)
    for key in ("samples", "checkpoint_samples", "nearest_k", "kid_subset"):
        need(getattr(c.eval, key) > 0, f"eval.{key}", "must be > 0", getattr(c.eval, key))
    for key in ("evaluator_epochs", "evaluator_subset"):
        need(getattr(c.eval, key) is None or getattr(c.eval, key) > 0, f"eval.{key}", "must be > 0 or null",
             getattr(c.eval, key))
    shipped = c.eval.evaluator != "train" and c.data.name in SHIPPED_EVALUATORS
    for key in ("evaluator_epochs", "evaluator_subset"):
        need(not shipped or getattr(c.eval, key) is None, f"eval.{key}", f"sets how an evaluator is trained here, "
             f"but {c.data.name} is scored with the shipped one: add eval.evaluator: train, or leave it out",
             getattr(c.eval, key))
    need(c.data.subset is None or c.data.subset >= t.batch_size, "data.subset",
         f"must hold at least one batch (train.batch_size = {t.batch_size})", c.data.subset)


def check_installed(config: Config, origin: str | Path) -> None:
    """Settings that need an optional package are refused before any work when it is missing.

    Raises:
        ConfigError: naming ``origin``, the key and how to install the package.
    """
    if config.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(f"{origin}: train.tensorboard: true needs the tensorboard package; install it with "
                          "pip install 'gan-workbook[tensorboard]' (or tensorboard==2.21.0), or set it to false")


def save(config: Config, path: str | Path, comment: str = "") -> None:
    """Write the resolved config as YAML (``comment`` first, as ``#`` lines)."""
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    write_atomic(path, head + yaml.safe_dump(config.to_dict(), sort_keys=False))

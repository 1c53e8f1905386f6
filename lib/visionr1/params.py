"""Params: YAML files composed in order (later files win) plus `--set key=value` overrides.

Every key must be declared in some stage notebook's `parameters` cell, as an annotated
assignment with a comment (docs/style.md §2):

    grpo_num_generations: int = 16  # completions per prompt; lower if rollouts OOM

The declarations are the schema: an unknown key, a value of the wrong type or a missing file
fails before any stage runs, with a message naming the key and the file it came from.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from functools import lru_cache
from pathlib import Path

import yaml


class ParamsError(ValueError):
    """A params file or override is wrong; the message names the file and the key."""


@dataclass
class Declaration:
    name: str
    annotation: str
    default: object
    comment: str
    notebooks: list[str] = field(default_factory=list)

    @property
    def type(self):
        return eval(self.annotation, {"__builtins__": {}}, _TYPE_NAMESPACE)  # noqa: S307 - names only


_TYPE_NAMESPACE = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict,
                   "None": None, "Any": typing.Any, "Optional": typing.Optional,
                   "Literal": typing.Literal, "Union": typing.Union}


def parameters_cell(nb_path: str | Path) -> str:
    """Source of the cell tagged `parameters` in a notebook."""
    nb = json.loads(Path(nb_path).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            src = cell["source"]
            return "".join(src) if isinstance(src, list) else src
    raise ParamsError(f"{nb_path}: no cell tagged 'parameters'")


def parse_declarations(source: str, origin: str) -> dict[str, Declaration]:
    """`name: type = default  # comment` lines of a parameters cell -> declarations."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out: dict[str, Declaration] = {}
    for node in tree.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            raise ParamsError(f"{origin}: line {node.lineno} of the parameters cell is not a "
                              f"declaration `name: type = value  # comment`")
        name = node.target.id
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line else ""
        try:
            default = ast.literal_eval(node.value) if node.value is not None else None
        except ValueError as e:
            raise ParamsError(f"{origin}: default of {name!r} must be a literal ({e})") from None
        decl = Declaration(name, ast.unparse(node.annotation), default, comment, [origin])
        try:
            decl.type
        except Exception as e:  # noqa: BLE001 - any eval failure means an unsupported annotation
            raise ParamsError(f"{origin}: type {decl.annotation!r} of {name!r} is not supported ({e})") from None
        check_type(default, decl.type, f"{origin}: default of {name!r}")
        out[name] = decl
    return out


def declarations(notebooks: list[Path]) -> dict[str, Declaration]:
    """All keys declared by the notebooks; a key declared twice must have one type and default."""
    merged: dict[str, Declaration] = {}
    for nb in notebooks:
        for name, d in parse_declarations(parameters_cell(nb), nb.name).items():
            if name in merged:
                m = merged[name]
                if (m.annotation, m.default) != (d.annotation, d.default):
                    raise ParamsError(f"{name!r} is declared as `{m.annotation} = {m.default!r}` in "
                                      f"{m.notebooks[0]} but `{d.annotation} = {d.default!r}` in {nb.name}")
                m.notebooks.append(nb.name)
            else:
                merged[name] = d
    return merged


def check_type(value, tp, where: str) -> None:
    """Raise ParamsError unless `value` fits the annotation `tp` (int is accepted as float)."""
    if not _fits(value, tp):
        shown = getattr(tp, "__name__", None) if not typing.get_args(tp) else None
        raise ParamsError(f"{where}: expected {shown or tp}, got {type(value).__name__} {value!r}")


def _fits(value, tp) -> bool:
    if tp is typing.Any:
        return True
    if tp is None or tp is type(None):
        return value is None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict:
        if not isinstance(value, dict):
            return False
        return all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()) if args else True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in (list, dict, str, bool):
        return isinstance(value, tp)
    return isinstance(value, tp)


@dataclass
class Resolved:
    """Composed params: every declared key with its value and where that value came from."""

    values: dict[str, object]
    sources: dict[str, str]
    decls: dict[str, Declaration]

    def for_notebook(self, nb_name: str) -> dict[str, object]:
        return {k: v for k, v in self.values.items() if nb_name in self.decls[k].notebooks}

    def overrides(self) -> dict[str, object]:
        return {k: v for k, v in self.values.items() if self.sources[k] != "default"}

    def dump(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {k: self.values[k] for k in sorted(self.values)}
        header = "# resolved params: " + ", ".join(sorted(set(self.sources.values()) - {"default"})) + "\n"
        path.write_text(header + yaml.safe_dump(body, sort_keys=False))
        return path


def parse_set(item: str) -> tuple[str, object]:
    """`key=value` with a YAML value: `--set grpo_beta=0.01`, `--set run_name=x`, `--set k=[1,2]`."""
    if "=" not in item:
        raise ParamsError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ParamsError(f"--set {item!r}: value is not valid YAML ({e})") from None


def read_params_file(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"params file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ParamsError(f"{p}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{p}: expected a mapping of key: value, got {type(data).__name__}")
    return data


def resolve(files: list[str | Path | tuple[str, dict]], sets: list[str] | None,
            decls: dict[str, Declaration]) -> Resolved:
    """Compose `files` in order, then `sets`; check every key and type against `decls`. A file may
    be given as (name, its mapping): a layer not written yet (`sweep --dry-run` writes nothing)."""
    values = {k: d.default for k, d in decls.items()}
    sources = {k: "default" for k in decls}
    # all files read before any check
    layers = [f if isinstance(f, tuple) else (str(f), read_params_file(f)) for f in files]
    layers += [("--set", dict([parse_set(s)])) for s in sets or []]
    for origin, data in layers:
        before = dict(values)  # a file's "{key}" means the value set before that file
        for key, value in data.items():
            if key not in decls:
                near = difflib.get_close_matches(str(key), decls, n=3)
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                raise ParamsError(f"{origin}: unknown key {key!r}: no notebook declares it in its "
                                  f"parameters cell{hint}")
            if isinstance(value, str):
                value = _interpolate(value, before, f"{origin}: key {key!r}")
            check_type(value, decls[key].type, f"{origin}: key {key!r}")
            if decls[key].type is float and isinstance(value, int):
                value = float(value)
            values[key] = value
            sources[key] = origin
    return Resolved(values, sources, decls)


_REF = re.compile(r"\{(\w+)\}")


def _interpolate(value: str, before: dict, where: str):
    """`{key}` in a string value is the key's value as set before this file, so an ablation file
    can say `run_name: "{run_name}-zero"` on top of any base params file; a value that is exactly
    `"{key}"` takes that value with its type (`rl_stages: "{rl_long_stages}"`)."""
    whole = _REF.fullmatch(value)
    if whole and whole.group(1) in before:
        return before[whole.group(1)]

    def sub(m):
        if m.group(1) not in before:
            raise ParamsError(f"{where}: {{{m.group(1)}}} names no declared key")
        return str(before[m.group(1)])
    return _REF.sub(sub, value)


@lru_cache(maxsize=None)
def stage_declarations(notebook: str) -> dict[str, Declaration]:
    """The declarations of one stage notebook (`"03_grpo_ptst"`), parsed once per process."""
    from visionr1 import env

    path = env.NOTEBOOKS_DIR / f"{notebook}.ipynb"
    return parse_declarations(parameters_cell(path), path.name)


def declared(notebook: str, prefix: str, notebook_only: tuple[str, ...] = ()) -> type:
    """A keyword-only dataclass with one field per `prefix` key of the notebook's parameters cell:
    `rl_beta: float = 0.01  # KL coefficient` becomes the field `beta: float = 0.01`. A stage's
    settings dataclass subclasses it, so the notebook line is the knob's only declaration (type,
    default and documentation) and a new knob takes one edit; the subclass adds what the notebook
    does not declare and redeclares the fields it resolves (a model reference -> a path). Keys in
    `notebook_only` (`rl_eval_samples`: used by the notebook's own cells) get no field.

    >>> GRPOSettings = declared("03_grpo_ptst", "rl_")
    >>> GRPOSettings().beta, GRPOSettings.__doc__.splitlines()[0]
    (0.01, 'The `rl_*` declarations of notebooks/03_grpo_ptst.ipynb, without the prefix.')
    """
    specs = []
    for name, d in stage_declarations(notebook).items():
        if name.startswith(prefix) and name not in notebook_only:
            meta, default = {"key": name, "comment": d.comment}, d.default
            fld = field(default_factory=lambda v=default: json.loads(json.dumps(v)), metadata=meta) \
                if isinstance(default, (list, dict)) else field(default=default, metadata=meta)
            specs.append((name[len(prefix):], d.type, fld))
    cls = make_dataclass(f"{notebook}_{prefix}declared", specs, kw_only=True)
    cls.__doc__ = f"The `{prefix}*` declarations of notebooks/{notebook}.ipynb, without the prefix."
    cls.PREFIX, cls.NOTEBOOK, cls.NOTEBOOK_ONLY = prefix, notebook, notebook_only

    def from_values(c, values: dict, **resolved):
        """The settings from a stage's params (`values`: its declared keys); `resolved` gives the
        fields computed from them (paths, the DeepSpeed config, ...), which win."""
        kw = {f.name: values[prefix + f.name] for f in fields(c) if prefix + f.name in values}
        return c(**{**kw, **resolved})

    cls.from_values = classmethod(from_values)
    return cls


def notebook_values(namespace: dict, notebook: str | Path) -> dict[str, object]:
    """The current values of a notebook's declared params, read from its namespace (`globals()`),
    e.g. to record them as a W&B run's config."""
    from visionr1 import env

    path = Path(notebook)
    path = path if path.is_absolute() else env.NOTEBOOKS_DIR / path
    return {k: namespace[k] for k in parse_declarations(parameters_cell(path), path.name) if k in namespace}


# numbered notebooks that run over a sweep's run folders, not inside one run: never a stage of `run`,
# and their parameters are no run's params (visionr1.sweep executes them)
SWEEP_NOTEBOOKS = ("06_compare",)


def stage_notebooks(notebooks_dir: Path) -> list[Path]:
    """The stage notebooks, in order of their number prefix (00_data, 01_..., ...); the sweep's own
    notebooks (`SWEEP_NOTEBOOKS`) are left out."""
    nbs = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb") if p.stem not in SWEEP_NOTEBOOKS)
    if not nbs:
        raise ParamsError(f"no stage notebooks (NN_name.ipynb) in {notebooks_dir}")
    return nbs

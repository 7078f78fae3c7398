"""Versioned YAML inputs: constitutions and the taxonomy, schema-validated on load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pydantic
import yaml

from ealign_dagster.core.paths import assets_dir

FRAMEWORKS = ("deontology", "consequentialism", "virtue", "deference")
MIN_PRINCIPLES = 8
MIN_FEW_SHOT = 2


class InputError(ValueError):
    """Bad input data; the message names the file and the field or row."""


def read_text(path: Path) -> str:
    try:
        data = Path(path).read_bytes()
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(f"{path}: line {line}, column {column}: not valid UTF-8 ({e.reason})") from None
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(x for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise InputError(f"{path}: {where}invalid YAML: {what}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


MAX_PROBLEMS = 3  # a file with hundreds of bad rows still gives one readable line


def _validate(model: type[pydantic.BaseModel], data: dict, path: Path):
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        errors = e.errors()
        problems = "; ".join(
            (f"field '{'.'.join(map(str, err['loc']))}': " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in errors[:MAX_PROBLEMS]
        )
        more = f" (and {len(errors) - MAX_PROBLEMS} more)" if len(errors) > MAX_PROBLEMS else ""
        raise InputError(f"{path}: {problems}{more}") from None


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=True)


NonEmpty = pydantic.constr(min_length=1)


def unique_ids(items: list, what: str) -> list:
    """A validator's check that no two items share an `id`: names the repeated ones."""
    ids = [i.id for i in items]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{what} listed twice: {', '.join(dup)}")
    return items


def _framework(v: str) -> str:
    if v not in FRAMEWORKS:
        raise ValueError(f"must be one of {', '.join(FRAMEWORKS)}")
    return v


Framework = Annotated[str, pydantic.AfterValidator(_framework)]


class Principle(_Strict):
    id: NonEmpty
    critique: NonEmpty
    revision: NonEmpty


class FewShot(_Strict):
    prompt: NonEmpty
    initial: NonEmpty
    critique: NonEmpty
    revision: NonEmpty


class Constitution(_Strict):
    name: NonEmpty
    title: NonEmpty
    framework: Framework
    persona: NonEmpty
    principles: list[Principle] = pydantic.Field(min_length=MIN_PRINCIPLES)
    few_shot: list[FewShot] = pydantic.Field(min_length=MIN_FEW_SHOT)

    @pydantic.field_validator("principles")
    @classmethod
    def _unique_ids(cls, v: list[Principle]) -> list[Principle]:
        return unique_ids(v, "principle ids")


class Scope(_Strict):
    categories: list[NonEmpty] = pydantic.Field(min_length=1)
    held_out: str | None = None


class Taxonomy(_Strict):
    version: int = 1
    categories: dict[str, str] = pydantic.Field(min_length=1)
    scopes: dict[str, Scope] = pydantic.Field(min_length=1)
    label_maps: dict[str, dict[str, str]] = {}

    @pydantic.model_validator(mode="after")
    def _references(self) -> Taxonomy:
        known = set(self.categories)
        for name, scope in self.scopes.items():
            for c in scope.categories:
                if c not in known:
                    raise ValueError(f"scopes.{name}.categories: unknown category '{c}'")
            if scope.held_out is not None:
                if scope.held_out not in known:
                    raise ValueError(f"scopes.{name}.held_out: unknown category '{scope.held_out}'")
                if scope.held_out in scope.categories:
                    raise ValueError(f"scopes.{name}.held_out: '{scope.held_out}' is also trained")
        for source, mapping in self.label_maps.items():
            for label, target in mapping.items():
                if target != "exclude" and target not in known:
                    raise ValueError(
                        f"label_maps.{source}.{label}: unknown category '{target}' "
                        f"(known: {', '.join(sorted(known))}, or 'exclude')"
                    )
        return self

    def held_out(self, scope: str) -> str | None:
        return self.scopes[scope].held_out

    def category_role(self, scope: str, category: str) -> str:
        """trained / held_out / other: a category's role for a scope."""
        s = self.scopes[scope]
        if category in s.categories:
            return "trained"
        if category == s.held_out:
            return "held_out"
        return "other"


def constitution_paths(root: Path | None = None) -> list[Path]:
    return sorted((root or assets_dir() / "constitutions").glob("*.yaml"))


def load_constitution(path: Path) -> Constitution:
    c = _validate(Constitution, read_yaml(path), path)
    if c.name != Path(path).stem:
        raise InputError(f"{path}: field 'name': '{c.name}' must equal the file name '{Path(path).stem}'")
    return c


class ControlConstitution(Constitution):
    """The no-constitution control arm's file: a generic harmlessness constitution, no theory."""

    framework: Literal["none"]


NO_CONSTITUTION = "no_constitution"  # the control arm that runs CAI under assets/controls/
INITIAL_ANSWERS = "initial_answers"  # the control arm that trains on the initial answers (no CAI)


def arm_path(name: str) -> Path | None:
    """The file behind a trained arm: a constitution, the no-constitution control's file, or None
    (the initial-answer control has no file)."""
    if name == INITIAL_ANSWERS:
        return None
    if name == NO_CONSTITUTION:
        return assets_dir() / "controls" / f"{name}.yaml"
    return assets_dir() / "constitutions" / f"{name}.yaml"


def load_arm(name: str) -> Constitution:
    """The constitution a CAI partition revises under (the no-constitution control's included)."""
    path = arm_path(name)
    if name == NO_CONSTITUTION:
        return _validate(ControlConstitution, read_yaml(path), path)
    return load_constitution(path)


def load_constitutions(root: Path | None = None) -> dict[str, Constitution]:
    paths = constitution_paths(root)
    if not paths:
        raise InputError(f"{root or assets_dir() / 'constitutions'}: no constitution *.yaml files")
    return {p.stem: load_constitution(p) for p in paths}


def taxonomy_path() -> Path:
    return assets_dir() / "taxonomy.yaml"


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    path = path or taxonomy_path()
    return _validate(Taxonomy, read_yaml(path), path)


# --- benign look-alike prompts (over-refusal control) -----------------------------------------------


class BenignPrompt(_Strict):
    id: NonEmpty
    resembles: NonEmpty  # a taxonomy category
    kind: NonEmpty  # why it looks harmful: free-form (homonym, fiction, history, ...), reported per kind
    text: NonEmpty


class BenignSet(_Strict):
    version: int
    prompts: list[BenignPrompt]


def benign_path() -> Path:
    return assets_dir() / "benign" / "lookalikes.yaml"


def load_benign(path: Path | None = None, taxonomy: Taxonomy | None = None) -> BenignSet:
    path = path or benign_path()
    data = _validate(BenignSet, read_yaml(path), path)
    taxonomy = taxonomy or load_taxonomy()
    seen: set[str] = set()
    for i, p in enumerate(data.prompts):
        if p.id in seen:
            raise InputError(f"{path}: prompts[{i}] ({p.id}): duplicate id")
        seen.add(p.id)
        if p.resembles not in taxonomy.categories:
            raise InputError(
                f"{path}: prompts[{i}] ({p.id}): field 'resembles': '{p.resembles}' is not a taxonomy category"
            )
    return data


# --- ethical-persona item bank ----------------------------------------------------------------------

MIN_ITEMS_PER_SUBSCALE = 8


class Subscale(_Strict):
    framework: str | None = None  # one of FRAMEWORKS; None for a distractor
    distractor: bool = False
    description: str = ""


class Item(_Strict):
    id: NonEmpty
    subscale: NonEmpty
    reverse: bool
    text: NonEmpty
    rival: str | None = None  # reverse items: the rival framework whose view they state
    paraphrase_of: str | None = None


class ItemBank(_Strict):
    version: int
    subscales: dict[str, Subscale]
    expected_profiles: dict[str, dict[str, float]]
    items: list[Item]

    def frameworks(self) -> dict[str, list[str]]:
        """framework -> its subscales (consequentialism has two)."""
        out: dict[str, list[str]] = {}
        for name, s in self.subscales.items():
            if s.framework and not s.distractor:
                out.setdefault(s.framework, []).append(name)
        return out


def item_bank_path() -> Path:
    return assets_dir() / "persona" / "items.yaml"


def load_item_bank(path: Path | None = None) -> ItemBank:
    path = path or item_bank_path()
    bank = _validate(ItemBank, read_yaml(path), path)
    ids = {}
    for i, it in enumerate(bank.items):
        where = f"{path}: items[{i}] ({it.id})"
        if it.id in ids:
            raise InputError(f"{where}: duplicate id")
        ids[it.id] = it
        if it.subscale not in bank.subscales:
            raise InputError(f"{where}: field 'subscale': '{it.subscale}' is not a declared subscale")
        if it.reverse and not it.rival:
            raise InputError(f"{where}: a reverse-keyed item must name the rival view it states (field 'rival')")
    for i, it in enumerate(bank.items):
        if it.paraphrase_of and (it.paraphrase_of not in ids or ids[it.paraphrase_of].subscale != it.subscale):
            raise InputError(
                f"{path}: items[{i}] ({it.id}): field 'paraphrase_of': no item '{it.paraphrase_of}' in subscale {it.subscale}"
            )
    for name, s in bank.subscales.items():
        if s.framework and s.framework not in FRAMEWORKS:
            raise InputError(
                f"{path}: subscales.{name}: field 'framework': '{s.framework}' is not one of {', '.join(FRAMEWORKS)}"
            )
        primary = [it for it in bank.items if it.subscale == name and not it.paraphrase_of]
        if len(primary) < MIN_ITEMS_PER_SUBSCALE:
            raise InputError(
                f"{path}: subscale '{name}' has {len(primary)} items; at least {MIN_ITEMS_PER_SUBSCALE} are needed"
            )
        if not any(it.reverse for it in primary) or all(it.reverse for it in primary):
            raise InputError(f"{path}: subscale '{name}' needs both plain and reverse-keyed items")
    for fw, prof in bank.expected_profiles.items():
        if fw not in FRAMEWORKS:
            raise InputError(f"{path}: expected_profiles.{fw}: not one of {', '.join(FRAMEWORKS)}")
        if set(prof) != set(bank.subscales):
            raise InputError(f"{path}: expected_profiles.{fw}: needs exactly the subscales {', '.join(bank.subscales)}")
    return bank


# --- known personas (the instrument's validation) ---------------------------------------------------


class Persona(_Strict):
    name: NonEmpty
    framework: Framework
    prompt: NonEmpty  # the system prompt that asks the base model to answer as this persona


class PersonaSet(_Strict):
    personas: list[Persona] = pydantic.Field(min_length=1)


def load_personas(path: Path | None = None) -> dict[str, Persona]:
    """Known personas by name: a personas file (name, framework, prompt), or by default each
    constitution's persona with the constitution's framework."""
    if path is None:
        return {n: Persona(name=n, framework=c.framework, prompt=c.persona) for n, c in load_constitutions().items()}
    personas = _validate(PersonaSet, read_yaml(path), path).personas
    seen: set[str] = set()
    for i, p in enumerate(personas):
        if p.name in seen:
            raise InputError(f"{path}: personas[{i}] ({p.name}): duplicate name")
        seen.add(p.name)
    return {p.name: p for p in personas}

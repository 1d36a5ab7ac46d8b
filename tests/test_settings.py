"""Typed settings: misspelled names fail (in code and in files), tomlkit saves keep comments,
the README reference is the validator's schema, and the settings modules stay untangled."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from clmtune.backend.cli import main
from clmtune.backend.settings import reference
from clmtune.backend.settings.run_config import RunConfig, Settings, TrainingSettings
from clmtune.backend.settings.schema import TYPED_SECTIONS, hand_written_schema, schema
from clmtune.backend.settings.schema_cache import active_schema
from clmtune.backend.settings.toml_io import load_config, save_config
from clmtune.backend.settings.validate import validate_document

REPO = Path(__file__).resolve().parent.parent
SECTION_NAMES = ("model", "data", "training", "launch", "samples", "notify", "peft")
MAX_LINES = 700


@pytest.fixture(scope="module")
def sch():
    """The real schema of the installed transformers (imported once for the module)."""
    return schema()


# ------------------------------------------------------------- misspelled names in code


def _is_settings(node: ast.AST) -> bool:
    """``settings`` or ``<anything>.settings``: the typed settings object by convention."""
    return (isinstance(node, ast.Name) and node.id == "settings") or (
        isinstance(node, ast.Attribute) and node.attr == "settings")


def settings_reads(tree: ast.AST) -> list[tuple[str, str, int]]:
    """Every ``settings.<section>.<name>`` read and ``settings.<section>.was_set("name")``
    call in a module, as (section, name, line)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not isinstance(node.value, ast.Attribute):
            continue
        owner = node.value
        if owner.attr in SECTION_NAMES and _is_settings(owner.value):
            found.append((owner.attr, node.attr, node.lineno))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "was_set" and isinstance(node.func.value, ast.Attribute) \
                and node.func.value.attr in SECTION_NAMES and _is_settings(node.func.value.value) \
                and node.args and isinstance(node.args[0], ast.Constant):
            found.append((node.func.value.attr, str(node.args[0].value), node.lineno))
    return found


def unknown_reads(tree: ast.AST, sch) -> list[str]:
    """The reads of ``settings_reads`` that name neither a setting nor a section method."""
    methods = {s: set(dir(cls)) for s, cls in TYPED_SECTIONS.items()}
    methods["training"] = set(dir(TrainingSettings))
    return [f"line {line}: settings.{section}.{name}"
            for section, name, line in settings_reads(tree)
            if name not in sch[section] and name not in methods[section]]


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def test_every_settings_attribute_read_in_the_code_exists(sch):
    total, problems = 0, []
    for path in _modules("backend", "tui"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        total += len(settings_reads(tree))
        problems += [f"{path.relative_to(REPO)} {p}" for p in unknown_reads(tree, sch)]
    assert problems == []
    assert total >= 60  # the walk does see the code's reads (it is not vacuous)


def test_the_walk_catches_a_misspelled_read(sch):
    code = ("def f(cfg, settings):\n"
            "    a = cfg.settings.training.learning_rat\n"
            "    b = settings.data.blok_size + settings.data.block_size\n"
            "    c = settings.model.was_set('model_nme')\n")
    assert unknown_reads(ast.parse(code), sch) == [
        "line 2: settings.training.learning_rat", "line 3: settings.data.blok_size",
        "line 4: settings.model.model_nme"]


def test_no_string_lookups_into_settings_remain():
    """cfg_get and cfg.get("section", "key") swallowed misspellings; they are gone."""
    found = []
    for path in _modules("backend", "tui"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "cfg_get":
                found.append(f"{path.name}:{node.lineno} cfg_get")
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get" and len(node.args) == 2):
                continue
            first, owner = node.args[0], node.func.value
            if isinstance(first, ast.Constant) and first.value in SECTION_NAMES \
                    and isinstance(node.args[1], ast.Constant):
                found.append(f"{path.name}:{node.lineno} .get({first.value!r}, ...)")
            elif isinstance(owner, ast.Name) and owner.id in ("cfg", "old", "config"):
                # RunConfig.get(section, key) is gone; a caller that catches the
                # AttributeError would silently read raw values without defaults.
                found.append(f"{path.name}:{node.lineno} {owner.id}.get(section, key)")
    assert found == []
    assert not hasattr(RunConfig, "get")


def test_resume_comparison_keys_are_settings(sch):
    from clmtune.backend.resume_plan import _EXACT_KEYS

    for section, key, _what in _EXACT_KEYS:
        assert key in sch[section], (section, key)


def test_out_of_memory_hint_reads_the_typed_batch_settings(sch):
    from clmtune.backend.worker import classify_error

    cfg = RunConfig(training={"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2})
    _error, hint = classify_error(RuntimeError("CUDA out of memory"), cfg)
    assert "(now 4 x 2)" in hint
    _error, hint = classify_error(RuntimeError("CUDA out of memory"), None)
    assert "now" not in hint


@pytest.mark.parametrize(("section", "typo", "closest"), [
    ("model", "model_name_or_pth", "model_name_or_path"),
    ("data", "blok_size", "block_size"),
    ("training", "learning_rat", "learning_rate"),
    ("launch", "nproc_per_nod", "nproc_per_node"),
])
def test_a_misspelled_attribute_raises_with_the_closest_name(sch, section, typo, closest):
    settings = RunConfig().settings
    with pytest.raises(AttributeError, match=f"did you mean '{closest}'"):
        getattr(getattr(settings, section), typo)
    with pytest.raises(AttributeError, match=closest):
        getattr(settings, section).was_set(typo)


def test_typed_reads_fill_defaults_from_the_schema(sch, tmp_path):
    cfg = RunConfig(training={"learning_rate": 1e-3}, data={"train_file": "t.txt"},
                    source=tmp_path / "run.toml")
    settings = cfg.settings
    assert settings.training.learning_rate == 1e-3 and settings.training.was_set("learning_rate")
    assert settings.training.seed == sch["training"]["seed"].default
    assert settings.training.logging_steps == 10  # the tool's default, not Hugging Face's
    assert not settings.training.was_set("seed")
    assert settings.data.train_file == str(tmp_path / "t.txt")  # paths come back absolute
    assert settings.data.block_size is None and settings.data.packing == "group"
    assert settings.model.dtype == "auto" and not settings.launch.distributed
    with pytest.raises(AttributeError, match="set by torchrun"):
        _ = settings.training.local_rank  # excluded fields say what to use instead
    assert isinstance(Settings.from_sections({}).training, TrainingSettings)


def test_typed_sections_are_the_hand_written_schema():
    """The dataclasses are the one declaration: specs are derived, kinds match annotations."""
    import dataclasses

    for section, specs in hand_written_schema().items():
        fields = dataclasses.fields(TYPED_SECTIONS[section])
        assert [f.name for f in fields] == list(specs)
        for f in fields:
            assert f.default == specs[f.name].default
            kind = specs[f.name].kind
            words = {"path": "str", "choice": "str"}.get(kind, kind)
            assert str(f.type).startswith(words), (section, f.name, f.type, kind)


# ------------------------------------------------------------- misspelled keys in a file


def test_check_names_the_closest_key_in_one_line(sch, tmp_path, capsys):
    (tmp_path / "train.txt").write_text("some text\n", encoding="utf-8")
    path = tmp_path / "run.toml"
    path.write_text('[model]\nmodel_type = "gpt2"\ntokenizer_name = "gpt2"\n'
                    '[data]\ntrain_file = "train.txt"\n'
                    "[training]\nlearning_rat = 1e-3\n", encoding="utf-8")
    rc = main(["check", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    unknown = [line for line in err if "learning_rat " in line or "learning_rat:" in line]
    assert unknown == [f"{path}: [training] learning_rat: unknown key; did you mean "
                       "learning_rate?"]


# ------------------------------------------------------------- tomlkit round trip

COMMENTED = """\
# My experiment: keep these notes!
[model]
model_name_or_path = "./model"  # the base model

[data]
# the data lives next to this file
train_file = "train.txt"
block_size = 64

[training]
max_steps = 10  # short run
learning_rate = 3e-4
seed = 7
"""


def test_save_keeps_comments_order_and_untouched_lines(sch, tmp_path):
    (tmp_path / "train.txt").write_text("hello\n", encoding="utf-8")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    path = tmp_path / "run.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    cfg = load_config(path, resolve_paths=False)
    cfg.training["learning_rate"] = 1e-3  # edited
    del cfg.training["seed"]  # removed
    cfg.training["warmup_steps"] = 5  # added
    cfg.training["hub_token"] = "hf_" + "x" * 30  # never written
    save_config(cfg, path, force=True)
    text = path.read_text(encoding="utf-8")
    for line in ("# My experiment: keep these notes!",
                 'model_name_or_path = "./model"  # the base model',
                 "# the data lives next to this file", "max_steps = 10  # short run"):
        assert line in text.splitlines()
    assert "seed" not in text and "hub_token" not in text and "hf_xxx" not in text
    keys = [line.split("=")[0].strip() for line in text.splitlines()
            if "=" in line and not line.startswith("#")]
    assert keys == ["model_name_or_path", "train_file", "block_size", "max_steps",
                    "learning_rate", "warmup_steps"]
    again = load_config(path, resolve_paths=False)
    assert again.training == {"max_steps": 10, "learning_rate": 1e-3, "warmup_steps": 5}


def test_save_of_an_unchanged_file_is_byte_identical(sch, tmp_path):
    (tmp_path / "train.txt").write_text("hello\n", encoding="utf-8")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    path = tmp_path / "run.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    save_config(load_config(path, resolve_paths=False), path)
    assert path.read_text(encoding="utf-8") == COMMENTED


# ------------------------------------------------------------- the README reference


def test_reference_tables_list_exactly_what_the_validator_accepts(sch):
    tables = reference.table_keys(reference.reference_markdown(sch))
    assert set(tables) == set(SECTION_NAMES)
    for section in SECTION_NAMES:
        assert sorted(tables[section]) == sorted(sch[section]), section
        key = tables[section][0]
        errors, _ = validate_document({section: {key: "x"}}, sch)
        assert not any(e.key == key and "unknown key" in e.message for e in errors)
    assert active_schema() is sch  # the validator's default schema is this one object


def test_readme_reference_is_generated_from_the_schema(sch):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = reference.readme_section(readme)
    generated = reference.reference_markdown(sch)
    readme_tables = reference.table_keys(section)
    for name in ("model", "data", "launch"):  # no transformers version in these
        want = generated.split(f"### `[{name}]`")[1].split("### ")[0].strip()
        assert want in section, f"README [{name}] is stale: python -m " \
            "clmtune.backend.settings --write-readme README.md"
    assert set(readme_tables["training"]) <= set(sch["training"])


def test_write_readme_replaces_only_the_marked_section(sch, tmp_path):
    path = tmp_path / "README.md"
    path.write_text(f"intro\n{reference.BEGIN}\nSTALE\n{reference.END}\noutro\n", encoding="utf-8")
    assert reference.write_readme(path, sch) is True
    text = path.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("outro\n") and "STALE" not in text
    assert reference.readme_section(text).startswith("### `[model]`")
    assert reference.write_readme(path, sch) is False


# ------------------------------------------------------------- module shape


def _imports(path: Path, package: str) -> set[str]:
    """Modules (``clmtune.…``) a module imports anywhere, lazily or not."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("clmtune.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.startswith("clmtune."):
                out.add(base)
                out |= {f"{base}.{a.name}" for a in node.names}
    return out


def _backend_graph() -> dict[str, set[str]]:
    names = {}
    for path in _modules("backend"):
        rel = path.relative_to(REPO / "backend").with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        names["clmtune.backend" + "".join(f".{p}" for p in parts)] = path
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = {m for m in _imports(path, package) if m in names and m != name}
    return graph


def test_no_backend_module_imports_a_module_that_imports_it_back():
    graph = _backend_graph()
    circles = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets
                      if a in graph.get(b, set())})
    assert circles == []


def test_the_settings_package_has_no_import_cycle():
    graph = {k: v for k, v in _backend_graph().items() if k.startswith("clmtune.backend.settings")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_settings_modules_are_small():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines())
             for p in (REPO / "backend" / "settings").glob("*.py")}
    assert sizes and max(sizes.values()) <= MAX_LINES, sizes
    assert not (REPO / "backend" / "config.py").exists()  # split by job, shim removed


def test_every_third_party_import_is_declared():
    """backend/, tui/ and themes/ import only what pyproject.toml declares (extras count)."""
    import re
    import sys
    from importlib.metadata import packages_distributions

    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - 3.10
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        wanted += extra

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {norm(re.split(r"[<>=!;\[ ]", dep, maxsplit=1)[0]) for dep in wanted}
    # Import names of optional extras that may not be installed here, so their metadata
    # cannot name the distribution: nvidia-ml-py installs the module pynvml.
    dists = {"pynvml": ["nvidia-ml-py"], **packages_distributions()}
    missing = set()
    for path in _modules("backend", "tui", "themes"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top == "clmtune":
                    continue
                if not any(norm(d) in declared for d in dists.get(top, [top])):
                    missing.add(f"{top} ({path.relative_to(REPO)})")
    assert sorted(missing) == []

"""The import graph runs one way, and each shared rule has one home (README, "Architecture").

Layers, lowest first: the shared base (roles, CSV cells, URL converters) ← kb ← annotation ← modeling ←
reports ← api ← the project (settings, URLs, home). A module imports only from its own layer or below,
lazy imports inside functions included. The pure core (matching, dataset formats, metrics, the student
and the teacher) imports no Django and nothing outside the pure core; the app configures it with objects.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("beautybrain_app", "kb", "annotation", "modeling", "reports", "api")
BASE = {"beautybrain_app.roles", "beautybrain_app.csv_cells", "beautybrain_app.converters"}
RANK = {"base": 0, "kb": 1, "annotation": 2, "modeling": 3, "reports": 4, "api": 5, "beautybrain_app": 6}
PURE = (
    "kb.rules", "kb.linking", "kb.gazetteer",
    "annotation.tokens", "annotation.agreement", "annotation.datasets",
    "modeling.metrics", "modeling.speed", "modeling.cascade", "modeling.export",
    "modeling.student", "modeling.teacher",
)
FRAMEWORKS = ("django", "celery", "ninja", "django_htmx", "environ", "template_partials")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_modules() -> dict[str, Path]:
    out = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                out[module_name(path)] = path
    return out


def imports(name: str, path: Path, known: set[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, at any depth, relative ones resolved;
    `from package import module` counts as importing the module (one of `known`), not the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known]
            found += [(node.lineno, m) for m in submodules] if submodules else [(node.lineno, module)]
    return found


def layer(module: str) -> str | None:
    top = module.split(".")[0]
    if top not in APPS:
        return None
    if any(module == b or module.startswith(b + ".") for b in BASE):
        return "base"
    return top


def is_pure(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PURE)


def test_imports_run_one_way():
    modules = app_modules()
    wrong = []
    for name, path in modules.items():
        own = layer(name)
        for line, target in imports(name, path, set(modules)):
            theirs = layer(target)
            if theirs is not None and RANK[theirs] > RANK[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {target} ({theirs})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(set(wrong)))


def test_the_pure_core_imports_no_django_and_nothing_outside_it():
    modules = app_modules()
    pure = [n for n in modules if is_pure(n)]
    assert {"kb.gazetteer", "modeling.student.train", "modeling.teacher.client"} <= set(pure)
    wrong = []
    for name in pure:
        for line, target in imports(name, modules[name], set(modules)):
            if target.split(".")[0] in FRAMEWORKS or (layer(target) is not None and not is_pure(target)
                                                       and target.split(".")[0] in APPS and target not in APPS):
                wrong.append(f"{modules[name].relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, "the pure core reaches into the app:\n" + "\n".join(sorted(set(wrong)))


def python_sources() -> list[Path]:
    files = [p for app in APPS for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]
    return files + sorted((ROOT / "bench").glob("*.py"))


CATEGORY_WORDS = {"skincare", "makeup", "haircare", "fragrance", "nails", "bodycare", "tools", "other"}
# The code points that open the CJK ranges, written as a literal, a \u escape or a number.
CJK_LITERAL = re.compile(r"\\u(?:4e00|3040|3400|ac00|f900)|0x(?:4e00|3040|3400|ac00|f900)\b|[\u4e00\u3040\u3400\uac00]-",
                         re.IGNORECASE)
POSSESSIVE_LITERAL = re.compile(r"""\[['"]?['’]{1,2}['"]?\]s\$""")


def test_each_shared_rule_has_one_home():
    home = ROOT / "kb" / "rules.py"
    again = []
    for path in python_sources():
        if path == home:
            continue
        source = path.read_text()
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                if len(words & CATEGORY_WORDS) >= 5:
                    again.append(f"{rel}:{node.lineno} writes the category list (kb.rules.CATEGORY_SLUGS)")
        for m in CJK_LITERAL.finditer(source):
            again.append(f"{rel}:{source.count(chr(10), 0, m.start()) + 1} writes a CJK range (kb.rules.CJK_RANGES)")
        for m in POSSESSIVE_LITERAL.finditer(source):
            again.append(f"{rel}:{source.count(chr(10), 0, m.start()) + 1} writes the possessive (kb.rules.POSSESSIVE)")
    assert not again, "a second definition of a shared rule:\n" + "\n".join(again)


def test_helpers_are_defined_once():
    defined: dict[str, list[str]] = {}
    for path in python_sources():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                defined.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    twice = {name: where for name, where in defined.items()
             if name in {"content_hash", "measure_speed", "load_tokenizer", "bio_labels", "normalize"} and len(where) > 1}
    assert not twice, f"defined more than once: {twice}"


def test_the_checks_catch_what_they_claim(tmp_path):
    """The walkers themselves: a lazy import against the layers and a second CJK range are found."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from annotation.models import Post\n\nRANGE = '[\\u4e00-\\u9fff]'\n")
    assert (2, "annotation.models") in imports("kb.probe", probe)
    assert RANK[layer("annotation.models")] > RANK[layer("kb.probe")]
    assert layer("beautybrain_app.roles") == "base" and layer("beautybrain_app.urls") == "beautybrain_app"
    assert CJK_LITERAL.search(probe.read_text())
    assert POSSESSIVE_LITERAL.search(r"""re.compile(r"['’]s$")""")

"""The arrows of the architecture: who may import whom, checked on the source and at run time.

    client commands -> worker_src.{wire, wire_lifecycle, json_text, contract, registry, aws,
                                   integer_text, steps, jobs.<kind>}
    infra           -> worker_src.contract only
    client.web      -> the client library, never the command line (client.cli*)
    no import cycles among the project's modules (function-level imports included)
    bench           -> no private module of worker_src.jobs (the kinds through the registry)
    tests           -> bench only from the benchmarks' own tests
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("infra", "worker_src", "client")
# What a client command may load of the worker package: the shared contracts and the
# kinds' descriptions (the top levels of worker_src/jobs/*.py import nothing heavy).
CLIENT_MAY_LOAD = {"worker_src", "worker_src.wire", "worker_src.wire_lifecycle",
                   "worker_src.contract", "worker_src.registry", "worker_src.aws",
                   "worker_src.jobs", "worker_src.integer_text", "worker_src.json_text",
                   "worker_src.capacity", "worker_src.steps"}
HEAVY = ("numpy", "PIL", "skimage", "scipy")
# The benchmarks' own tests: the only test modules that may import bench.
BENCH_TESTS = {"tests.test_bench_smoke", "tests.test_scaling", "tests.test_scaling_elastic"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if "static" not in p.parts}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def modules_in(*folders: str, root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for folder in folders for p in (root / folder).rglob("*.py")}


def private_kind_imports(folder: str, root: Path = ROOT) -> dict[str, set[str]]:
    """The private modules of worker_src.jobs (`_name`) each module under `folder` imports."""
    known = set(modules_in("worker_src", folder, root=root))
    found = {}
    for name, path in modules_in(folder, root=root).items():
        private = {t for t in imports_of(name, path, known)
                   if t.startswith("worker_src.jobs._")}
        if private:
            found[name] = private
    return found


def bench_importers(root: Path = ROOT) -> set[str]:
    """The test modules that import anything of bench."""
    known = set(modules_in("bench", "tests", root=root))
    return {name for name, path in modules_in("tests", root=root).items()
            if any(t == "bench" or t.startswith("bench.") for t in imports_of(name, path, known))}


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges.get(node, ()):
            # A package's __init__ is not an edge to its modules' cycle.
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_there_are_no_import_cycles():
    edges = graph()
    # Importing `package.module` runs `package/__init__.py` first: not an arrow back.
    edges = {name: {t for t in targets if not name.startswith(t + ".")}
             for name, targets in edges.items()}
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_infra_imports_only_the_contract_of_the_worker_and_nothing_of_the_client():
    for name, targets in graph().items():
        if name.startswith("infra"):
            outside = {t for t in targets if not t.startswith("infra")}
            assert outside <= {"worker_src", "worker_src.contract"}, (name, outside)


def is_cli(module: str) -> bool:
    parts = module.split(".")
    return (len(parts) > 1 and parts[0] == "client" and parts[1].startswith("cli")
            or module == "client.__main__")


def test_the_web_package_imports_the_library_and_nothing_of_the_command_line():
    edges = graph()
    assert {"client.api", "client.dlq"} <= set().union(
        *(targets for name, targets in edges.items() if name.startswith("client.web")))
    for name, targets in edges.items():
        if name.startswith("client.web"):
            assert not [t for t in targets if is_cli(t)], name


def test_the_command_line_test_knows_the_cli_modules():
    assert [is_cli(m) for m in ("client.cli", "client.cli_jobs", "client.__main__",
                                "client", "client.api", "client.web.app", "client.jobs")] == [
        True, True, True, False, False, False, False]


def test_client_run_help_loads_no_heavy_package_and_only_the_shared_worker_modules():
    """What `python -X importtime -m client run --help` shows, read from its report."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "client", "run",
                             "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "usage: python -m client run" in result.stdout
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:") and "|" in line}
    assert "client.cli" in loaded and "worker_src.registry" in loaded
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    worker_modules = {m for m in loaded if m.startswith("worker_src")}
    kind_modules = {m for m in worker_modules if m.startswith("worker_src.jobs.")}
    assert worker_modules - kind_modules <= CLIENT_MAY_LOAD
    assert not [m for m in kind_modules if m.rsplit(".", 1)[-1].startswith("_")]


def test_bench_imports_no_private_module_of_the_kinds():
    assert private_kind_imports("bench") == {}


def test_no_product_test_imports_bench():
    assert bench_importers() <= BENCH_TESTS


def test_the_edge_checks_find_a_private_kind_import_and_a_test_importing_bench(tmp_path):
    (tmp_path / "worker_src" / "jobs").mkdir(parents=True)
    for name in ("__init__", "jobs/__init__", "jobs/_clahe", "jobs/clahe"):
        (tmp_path / "worker_src" / f"{name}.py").write_text("")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "bench" / "ok.py").write_text("from worker_src.jobs import clahe\n")
    (tmp_path / "bench" / "bad.py").write_text(
        "def f():\n    from worker_src.jobs import _clahe\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("import bench.ok\n")
    (tmp_path / "tests" / "test_y.py").write_text("from worker_src.jobs import clahe\n")
    assert private_kind_imports("bench", tmp_path) == {"bench.bad": {"worker_src.jobs._clahe"}}
    assert bench_importers(tmp_path) == {"tests.test_x"}

"""No SQL is built from strings holding values, and no file path is built from client input.

The SQL check reads every module under pixyproxy/adapters and finds each string that looks like SQL and
is assembled at run time: an f-string, `%` formatting, `.format()` or `+`. Every piece put into such a
string must be provably constant: a literal, a module constant (also when imported from another pixyproxy
module), a local only ever assigned constants, a loop variable over constants, an `int()`/`len()`,
or a `", ".join()` of such. Constant column lists are fine; a value (a parameter, an attribute, a call
result) is not: values travel as bound parameters.
"""

import ast
import re
import uuid
from pathlib import Path

import pytest

from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.domain.errors import ImageNotFound
from pixyproxy.domain.models import GenerationRequest
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator
from tests.support.use_cases import build_use_cases

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ROOT / "pixyproxy" / "adapters"
SQL = re.compile(
    r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|DATABASE)|DROP\s+\w+|"
    r"ALTER\s+TABLE|WHERE|VALUES|PRAGMA|ORDER\s+BY|LIMIT)\b"
)
NUMERIC_CALLS = {"int", "len"}
PASS_THROUGH_CALLS = {"sorted", "tuple", "list", "set", "frozenset", "reversed", "range"}


class Module:
    """One parsed module, with its top-level assignments and the names it imports from pixyproxy."""

    cache: dict[Path, "Module"] = {}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.assignments: dict[str, list[ast.expr]] = {}
        self.imports: dict[str, tuple[str, str]] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    for name in _names(target):
                        self.assignments.setdefault(name, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign)
                and node.value is not None
                and isinstance(node.target, ast.Name)
            ):
                self.assignments.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pixyproxy"):
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)

    @classmethod
    def load(cls, path: Path) -> "Module":
        if path not in cls.cache:
            cls.cache[path] = cls(path)
        return cls.cache[path]

    @staticmethod
    def of(dotted: str) -> "Module | None":
        base = ROOT / Path(*dotted.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.exists():
                return Module.load(candidate)
        return None


def _names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for elt in target.elts for n in _names(elt)]
    return []


def _local_assignments(function: ast.AST, name: str) -> list[ast.AST] | None:
    """Every way `name` is bound in `function` (None when it is not a local: a global or a parameter)."""
    found: list[ast.AST] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(name in _names(t) for t in node.targets):
            found.append(node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and name in _names(node.target):
            found.append(node.value if not isinstance(node, ast.AugAssign) else node)
        elif isinstance(node, ast.For | ast.AsyncFor) and name in _names(node.target):
            found.append(node)
        elif isinstance(node, ast.With | ast.AsyncWith):
            found.extend(
                i for i in node.items if i.optional_vars is not None and name in _names(i.optional_vars)
            )
        elif isinstance(node, ast.NamedExpr) and node.target.id == name:
            found.append(node.value)
    args = getattr(function, "args", None)
    if args is not None and name in {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}:
        return [ast.arg(arg=name)]  # a parameter: a value from the caller
    return found or None


class Prover:
    """Decides whether an expression is a constant (can carry no value from outside into the SQL)."""

    def __init__(self, module: Module, function: ast.AST | None) -> None:
        self.module = module
        self.function = function
        self.bound: dict[str, bool] = {}  # comprehension variables: name -> constant?
        self.visiting: set[tuple[int, str]] = set()

    def constant(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.JoinedStr):
            return all(self.constant(v) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            return self.constant(node.value)
        if isinstance(node, ast.BinOp):
            return self.constant(node.left) and self.constant(node.right)
        if isinstance(node, ast.IfExp):
            return self.constant(node.body) and self.constant(node.orelse)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return all(self.constant(e) for e in node.elts)
        if isinstance(node, ast.Starred):
            return self.constant(node.value)
        if isinstance(node, ast.Dict):
            return all(k is None or self.constant(k) for k in node.keys) and all(
                self.constant(v) for v in node.values
            )
        if isinstance(node, ast.Subscript):
            # Whatever the index or slice, a part of a constant container is one of its constants.
            return self.constant(node.value)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.GeneratorExp | ast.ListComp | ast.SetComp):
            return self.comprehension(node.generators, [node.elt])
        if isinstance(node, ast.DictComp):
            return self.comprehension(node.generators, [node.key, node.value])
        return False  # attributes (self.x), awaits, lambdas...: values

    def call(self, node: ast.Call) -> bool:
        func = node.func
        if isinstance(func, ast.Name) and func.id in NUMERIC_CALLS:
            return True  # a number cannot inject SQL
        if isinstance(func, ast.Name) and func.id in PASS_THROUGH_CALLS:
            return all(self.constant(a) for a in node.args)
        if isinstance(func, ast.Attribute) and func.attr == "join" and isinstance(func.value, ast.Constant):
            return all(self.elements(a) for a in node.args)
        return False

    def comprehension(self, generators: list[ast.comprehension], results: list[ast.expr]) -> bool:
        saved = dict(self.bound)
        try:
            for generator in generators:
                self.bind(generator.target, generator.iter)
            return all(self.constant(r) for r in results)
        finally:
            self.bound = saved

    def bind(self, target: ast.expr, iterable: ast.expr) -> None:
        """Loop variables: constant when what they iterate over yields constants."""
        is_enumerate = (
            isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Name)
            and iterable.func.id == "enumerate"
            and iterable.args
        )
        if is_enumerate and isinstance(target, ast.Tuple) and len(target.elts) == 2:
            for name in _names(target.elts[0]):
                self.bound[name] = True  # the index
            for name in _names(target.elts[1]):
                self.bound[name] = self.elements(iterable.args[0])
            return
        for name in _names(target):
            self.bound[name] = self.elements(iterable)

    def elements(self, iterable: ast.expr) -> bool:
        """Whether iterating `iterable` yields constants (for a dict: its keys)."""
        if isinstance(iterable, ast.Name) and iterable.id not in self.bound and self.function is not None:
            assigned = _local_assignments(self.function, iterable.id)
            if assigned and all(isinstance(a, ast.DictComp) for a in assigned):
                return all(self.comprehension(a.generators, [a.key]) for a in assigned)
        if isinstance(iterable, ast.DictComp):
            return self.comprehension(iterable.generators, [iterable.key])
        return self.constant(iterable)

    def name(self, name: str) -> bool:
        if name in self.bound:
            return self.bound[name]
        key = (id(self.function), name)
        if key in self.visiting:
            return False
        self.visiting.add(key)
        try:
            if self.function is not None:
                assigned = _local_assignments(self.function, name)
                if assigned is not None:
                    return all(self.binding(a) for a in assigned)
            if name in self.module.assignments:
                module_level = Prover(self.module, None)
                return all(module_level.constant(v) for v in self.module.assignments[name])
            if name in self.module.imports:
                source, original = self.module.imports[name]
                other = Module.of(source)
                if other is not None and original in other.assignments:
                    return all(Prover(other, None).constant(v) for v in other.assignments[original])
            return False
        finally:
            self.visiting.discard(key)

    def binding(self, node: ast.AST) -> bool:
        if isinstance(node, ast.For | ast.AsyncFor):
            saved = dict(self.bound)
            self.bind(node.target, node.iter)
            ok = all(self.bound.get(n, False) for n in _names(node.target))
            self.bound = saved
            return ok
        if isinstance(node, ast.expr):
            return self.constant(node)
        return False  # parameters, with-targets, augmented assignments


def _looks_like_sql(node: ast.AST) -> bool:
    parts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return bool(SQL.search(" ".join(parts)))


def _pieces(node: ast.AST) -> list[ast.expr] | None:
    """The run-time pieces of a string built by formatting, or None when `node` builds no string."""
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
        right = node.right
        return list(right.elts) if isinstance(right, ast.Tuple) else [right]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [node.left, node.right]
    func = getattr(node, "func", None)
    if isinstance(func, ast.Attribute) and func.attr == "format" and isinstance(func.value, ast.Constant):
        return [*node.args, *(k.value for k in node.keywords)]
    return None


def sql_built_from_values(path: Path) -> list[str]:
    """`file:line: source` for every SQL string in the module that is built with a non-constant piece."""
    module = Module.load(path)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(module.tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    problems = []
    for node in ast.walk(module.tree):
        pieces = _pieces(node)
        if pieces is None or not _looks_like_sql(node):
            continue
        function = node
        while function in parents and not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            function = parents[function]
        prover = Prover(
            module, function if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) else None
        )
        # Comprehension variables in scope of the node (e.g. inside a generator expression).
        scope = node
        while scope in parents:
            scope = parents[scope]
            if isinstance(scope, ast.GeneratorExp | ast.ListComp | ast.SetComp | ast.DictComp):
                for generator in scope.generators:
                    prover.bind(generator.target, generator.iter)
        if not all(prover.constant(piece) for piece in pieces):
            problems.append(
                f"{path.relative_to(ROOT)}:{node.lineno}: {ast.get_source_segment(path.read_text(), node)}"
            )
    return problems


def adapter_modules() -> list[Path]:
    return sorted(p for p in ADAPTERS.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", adapter_modules(), ids=lambda p: str(p.relative_to(ADAPTERS)))
def test_adapters_build_no_sql_from_values(path):
    assert sql_built_from_values(path) == []


def test_the_sql_modules_are_really_inspected():
    """The check must see the SQL the adapters do build from constants, or it proves nothing."""
    module = Module.load(ADAPTERS / "sql" / "images.py")
    built = [n for n in ast.walk(module.tree) if _pieces(n) is not None and _looks_like_sql(n)]
    assert len(built) >= 5


BAD = """
TABLE = "images"
COLUMNS = ("guid", "prompt")

def by_guid(guid):
    return f"SELECT * FROM images WHERE guid = '{guid}'"

def by_prompt(db, prompt):
    db.execute("SELECT * FROM images WHERE prompt = '%s'" % prompt)

def by_format(db, model):
    db.execute("SELECT * FROM images WHERE model = '{}'".format(model))

def by_plus(db, name):
    db.execute("DELETE FROM images WHERE guid = '" + name + "'")

class Repo:
    def order(self, column):
        return f"SELECT guid FROM {TABLE} ORDER BY {self.column}"

def in_list(db, guids):
    marks = ", ".join(f"'{g}'" for g in guids)
    db.execute(f"SELECT guid FROM images WHERE guid IN ({marks})")

def limit(db, n):
    where = " WHERE guid = " + n
    db.execute(f"SELECT guid FROM images{where}")
"""
GOOD = """
COLUMNS = ("guid", "prompt")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM images"

def get(db, guid):
    return db.execute(f"{SELECT} WHERE guid = :guid", {"guid": guid})

def page(db, after):
    where = ""
    if after:
        where = " WHERE id < :id"
    return db.execute(f"{SELECT}{where} LIMIT :limit", {"limit": 10})

def many(db, guids):
    params = {f"g{i}": g for i, g in enumerate(guids)}
    marks = ", ".join(f":{name}" for name in params)
    return db.execute(f"SELECT guid FROM images WHERE guid IN ({marks})", params)

def migrate(db, version):
    for target in sorted(v for v in MIGRATIONS if v > version):
        db.executescript(f"BEGIN; {MIGRATIONS[target]} PRAGMA user_version = {int(target)}; COMMIT;")

MIGRATIONS = {1: "CREATE TABLE images (guid TEXT)"}
"""


def test_the_check_flags_values_and_accepts_constant_column_lists(tmp_path, monkeypatch):
    monkeypatch.setattr(Module, "cache", {})
    bad, good = tmp_path / "bad.py", tmp_path / "good.py"
    bad.write_text(BAD)
    good.write_text(GOOD)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    flagged = sql_built_from_values(bad)
    lines = sorted({int(line.split(":")[1]) for line in flagged})
    assert lines == [6, 9, 12, 15, 19, 23, 26, 27], flagged
    assert sql_built_from_values(good) == []


# -- no file path from client input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../pixyproxy.db",
        "../../etc/passwd",
        "/etc/passwd",
        "..\\..\\x.png",
        "%2e%2e%2fx.png",
        f"../{uuid.uuid4()}.png",
        f"{uuid.uuid4()}.png/../../x",
        f"{uuid.uuid4()}.png\x00.txt",
        f"{str(uuid.uuid4()).upper()}.png",
        f"sub/{uuid.uuid4()}.png",
        "a" * 10_240,
        "",
    ],
)
async def test_the_file_store_refuses_every_key_but_a_uuid_png(tmp_path, key):
    store = FileBlobStore(tmp_path / "images")
    await store.init()
    for call in (store.put(key, b"x", "image/png"), store.open(key), store.delete(key)):
        with pytest.raises(ValueError, match="not a blob key"):
            await call
    assert [p.name for p in tmp_path.rglob("*")] == ["images"]


def test_the_file_store_joins_its_folder_with_a_key_in_one_checked_place():
    tree = ast.parse((ADAPTERS / "file_blob_store.py").read_text())
    joins = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                    joins.append(function.name)
    assert joins == ["_path"]
    path_function = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "_path")
    assert "_KEY.match" in ast.unparse(path_function)


@pytest.mark.parametrize("prompt", ["../../etc/passwd", "/tmp/x.png", "..\\..\\boot.ini", "name.png"])
async def test_stored_names_come_from_the_generated_guid_never_from_the_request(prompt):
    blobs, repository = InMemoryBlobStore(), InMemoryImageRepository()
    cases = build_use_cases(ScriptedGenerator(), repository, blobs)
    detail = await cases.generate(GenerationRequest(prompt=prompt), idempotency_key="../../idem")
    assert list(blobs.blobs) == [detail.filename] == [f"{detail.guid}.png"]
    for hostile in (prompt, "../" + detail.filename, f"{detail.guid}/../x", "%2e%2e%2f"):
        with pytest.raises(ImageNotFound):
            await cases.read(hostile)

"""Only :mod:`kaalwatch.lifecycle` (and the store that reads and writes manifests) changes an order.

An AST scan of every module in ``kaalwatch/`` and ``review_app/``. The detection rule, within each function:
a name is an *order object* when it is a parameter annotated with a manifest type (``Order``, ``Job``,
``Version``…), the target of ``with ….edit(…) as name``, an order read by ``….load(…)``, or is bound (by
assignment, ``for`` or ``enumerate``) from an order object's attribute, item, or ``.job(…)``/``.version(…)``;
``x.order`` (a new order built from a receipt) is one too. A violation is an assignment, augmented
assignment, ``del``, ``setattr`` or mutating call (``.append``, ``.pop``, ``.update``…) whose target is an
attribute or item reached from an order object. Objects freshly built by a constructor (``Reference(…)``)
are not order objects until they are attached, so building one is not a violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_TYPES = {"Order", "Job", "Version", "Reference", "Proof", "Deliverable", "Answer", "Note", "Event", "AddOn",
               "Shipment"}
MUTATING = {"append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "sort", "reverse",
            "popitem", "discard", "add"}
# The writers: the lifecycle, the store, and the model that builds orders from dicts (and its migrations).
ALLOWED = ("kaalwatch/lifecycle/", "kaalwatch/store.py", "kaalwatch/model.py", "kaalwatch/migrations")


def _annotated_model(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return any(name in MODEL_TYPES for name in annotation.value.replace("|", " ").split())
    return any(isinstance(node, ast.Name) and node.id in MODEL_TYPES for node in ast.walk(annotation))


def _root(expr: ast.expr) -> ast.expr:
    while isinstance(expr, ast.Attribute | ast.Subscript | ast.Call):
        expr = expr.func if isinstance(expr, ast.Call) else expr.value
    return expr


class _Scan(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.tracked: list[set[str]] = [set()]
        self.found: list[str] = []

    # --- what is an order object

    def _is_model(self, expr: ast.expr) -> bool:
        if isinstance(expr, ast.Name):
            return expr.id in self.tracked[-1]
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Attribute) and func.attr in ("load", "read_folder"):
                return True  # a workspace's order, read from its manifest
            return (isinstance(func, ast.Attribute) and func.attr in ("job", "version")
                    and self._is_model(func.value))
        if isinstance(expr, ast.Attribute) and expr.attr == "order":
            return True  # ``new.order``: an order built from a receipt, on its way to the workspace
        if isinstance(expr, ast.Attribute | ast.Subscript):
            return self._is_model(expr.value)
        return False

    def _reached(self, target: ast.expr) -> bool:
        """An attribute or item of an order object (the object itself being rebound is not a change)."""
        return isinstance(target, ast.Attribute | ast.Subscript) and self._is_model(target.value)

    def _bind(self, target: ast.expr, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name) and value is not None and self._is_model(value):
            self.tracked[-1].add(target.id)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        names = set(self.tracked[-1])
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if not isinstance(node, ast.Lambda) and _annotated_model(arg.annotation):
                names.add(arg.arg)
            elif isinstance(node, ast.Lambda) and arg.arg in ("order", "job"):
                names.add(arg.arg)  # the review page's ``_act(…, lambda order, job: …)``
        self.tracked.append(names)
        self.generic_visit(node)
        self.tracked.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            call = item.context_expr
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "edit"
                    and isinstance(item.optional_vars, ast.Name)):
                self.tracked[-1].add(item.optional_vars.id)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        source = node.iter
        target = node.target
        if (isinstance(source, ast.Call) and isinstance(source.func, ast.Name) and source.func.id == "enumerate"
                and source.args and isinstance(target, ast.Tuple) and len(target.elts) == 2):
            self._bind(target.elts[1], source.args[0])
        elif (isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute)
              and source.func.attr == "iter_orders" and isinstance(target, ast.Tuple)):
            self.tracked[-1].add(target.elts[-1].id if isinstance(target.elts[-1], ast.Name) else "")
        else:
            self._bind(target, source)
        self._check_target(target, node)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._bind(node.target, node.iter)
        self.generic_visit(node)

    # --- what is a change

    def _flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.path}:{getattr(node, 'lineno', 0)}: {what}")

    def _check_target(self, target: ast.expr, node: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._check_target(element, node)
        elif self._reached(target):
            self._flag(node, ast.unparse(target))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, node)
            self._bind(target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_target(node.target, node)
        if isinstance(node.target, ast.Name) and _annotated_model(node.annotation):
            self.tracked[-1].add(node.target.id)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target, node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "setattr" and node.args and self._is_model(node.args[0]):
            self._flag(node, f"setattr({ast.unparse(node.args[0])}, …)")
        if isinstance(func, ast.Attribute) and func.attr in MUTATING and self._reached(func.value):
            self._flag(node, f"{ast.unparse(func.value)}.{func.attr}(…)")
        self.generic_visit(node)


def scan(source: str, path: str = "<test>") -> list[str]:
    visitor = _Scan(path)
    visitor.visit(ast.parse(source))
    return visitor.found


def _modules() -> list[Path]:
    files = sorted([*(ROOT / "kaalwatch").rglob("*.py"), *(ROOT / "review_app").rglob("*.py")])
    return [f for f in files if not f.relative_to(ROOT).as_posix().startswith(ALLOWED)]


def test_no_module_outside_the_lifecycle_changes_an_order() -> None:
    found = [hit for path in _modules()
             for hit in scan(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())]
    assert found == []


def test_the_scan_finds_planted_changes() -> None:
    planted = '''
def sync(order: Order, receipt) -> None:
    order.etsy_updated_at = receipt.updated
    order.total, order.currency = receipt.total, receipt.currency
    setattr(order, "gift_message", "")

def deliver(ws, rid):
    new = build_order(receipt)
    new.order.references = []
    with ws.edit(rid) as current:
        current.extra["shipment"] = {"status": "created"}
        job = current.job("1")
        job.crop["print"] = 0.5
        job.deliverables.clear()
        for version in job.versions:
            version.preview = None
        for n, ref in enumerate(current.references):
            del ref.thumb

def review(ws, rid):
    return _act(rid, "1", lambda order, job: order.notes.append(note))

def count(report: Report, job: Job) -> None:
    job.revisions_used += 1
'''
    assert [hit.split(": ", 1)[1] for hit in scan(planted)] == [
        "order.etsy_updated_at", "order.total", "order.currency", "setattr(order, …)", "new.order.references",
        "current.extra['shipment']",
        "job.crop['print']", "job.deliverables.clear(…)", "version.preview", "ref.thumb", "order.notes.append(…)",
        "job.revisions_used",
    ]


def test_the_scan_leaves_alone_what_is_not_an_order() -> None:
    clean = '''
def build(new: NewOrder, report: Report) -> Reference:
    report.errors.append("x")
    ref = Reference(name="a", source="buyer")
    ref.label = "built here, not yet on an order"
    return ref

def read(ws, rid):
    order = ws.load(rid)
    names = [d.name for job in order.jobs for d in job.deliverables]
    names.append("x")
    with ws.edit(rid) as order:
        lifecycle.approve(order, "1", 2)
'''
    assert scan(clean) == []

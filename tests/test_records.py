"""``idpbuilder._records.dataclass`` behaves as ``dataclasses.dataclass`` for everything the code uses.

Each case defines the same class body twice, once with each decorator, and compares what they do:
construction (positional, keyword-only, defaults, factories, ``init=False``, ``__post_init__``), ``repr``,
``==``, ``hash``, ordering, frozen assignment, ``__match_args__``, ``replace`` and the errors.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from idpbuilder import _records

Deco = Callable[..., Any]
BOTH = [
    pytest.param((dataclasses.dataclass, dataclasses.field, dataclasses.replace), id="dataclasses"),
    pytest.param((_records.dataclass, _records.field, _records.replace), id="records"),
]


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What calling ``fn`` does: ("ok", result) or (exception type name, message)."""
    try:
        return "ok", fn()
    except Exception as e:  # the exception class differs (FrozenInstanceError): compare its family and text
        kind = "AttributeError" if isinstance(e, AttributeError) else type(e).__name__
        return kind, str(e)


def _classes(make: Callable[[Deco, Deco], dict[str, type]]) -> tuple[dict[str, type], dict[str, type]]:
    (dc, dfield, _), (rc, rfield, _) = (p.values[0] for p in BOTH)
    return make(dc, dfield), make(rc, rfield)


def _models(dataclass: Deco, field: Deco) -> dict[str, type]:
    @dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: tuple[str, ...] = ()
        extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
        note: str = field(default="", repr=False)
        LIMIT: ClassVar[int] = 3

    @dataclass(frozen=True, kw_only=True)
    class Base:
        node: str

    @dataclass(frozen=True, kw_only=True)
    class Child(Base):
        image: str
        name: str | None = None
        items: list[int] = field(default_factory=list)

    @dataclass(frozen=True, kw_only=True)
    class Grandchild(Child):
        name: str | None = "override"
        flag: bool = False

    @dataclass
    class Mutable:
        a: int
        b: list[int] = field(default_factory=list)
        c: str = field(default="c", init=False, repr=False)
        d: list[int] = field(default_factory=list, init=False)
        log: list[str] = field(default_factory=list, init=False, repr=False)

        def __post_init__(self) -> None:
            self.log.append(f"post {self.a}")

    @dataclass(frozen=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")
            object.__setattr__(self, "value", self.value * 2)

    @dataclass(frozen=True, order=True)
    class Version:
        major: int
        minor: int = 0
        label: str = field(default="", compare=False)

    @dataclass(frozen=True)
    class Secret:
        user: str
        password: str

        def __repr__(self) -> str:
            return f"Secret({self.user!r}, ***)"

    @dataclass(frozen=True)
    class OwnHash:
        a: int

        def __hash__(self) -> int:
            return 42

    @dataclass
    class MutableWithEq:
        a: int

        def __eq__(self, other: object) -> bool:
            return True

    @dataclass(frozen=True)
    class Empty:
        pass

    @dataclass(frozen=True)
    class One:
        v: float

    @dataclass(frozen=True)
    class Nested:
        inner: One
        many: tuple[One, ...] = ()

    class Plain(Point):  # a plain subclass inherits the generated methods
        def double(self) -> int:
            return self.x * 2

    return {k: v for k, v in locals().items() if isinstance(v, type)}


A, B = _classes(_models)


def _same(fn: Callable[[dict[str, type]], Any]) -> None:
    a, b = _outcome(lambda: fn(A)), _outcome(lambda: fn(B))
    assert _normal(a) == _normal(b), f"dataclasses: {a!r}\nrecords:     {b!r}"


def _normal(x: Any) -> Any:
    """Results made comparable across the two class families: records become their repr."""
    if isinstance(x, tuple):
        return tuple(_normal(v) for v in x)
    if isinstance(x, list):
        return [_normal(v) for v in x]
    if hasattr(type(x), "__dataclass_fields__") or hasattr(type(x), "__record_fields__"):
        return ("record", type(x).__qualname__.rsplit(".", 1)[-1], repr(x))
    return x


CASES: list[tuple[str, Callable[[dict[str, type]], Any]]] = [
    ("positional", lambda c: c["Point"](1, 2, ("a",))),
    ("defaults", lambda c: c["Point"](1)),
    ("keywords", lambda c: c["Point"](x=1, extra={"k": "v"}, note="n")),
    ("missing arg", lambda c: c["Point"]()),
    ("too many", lambda c: c["Point"](1, 2, (), {}, "", 9)),
    ("unknown kw", lambda c: c["Point"](1, z=3)),
    ("eq ignores compare=False", lambda c: c["Point"](1, extra={"a": "b"}) == c["Point"](1)),
    ("eq differs", lambda c: c["Point"](1) == c["Point"](2)),
    ("eq other class", lambda c: c["Point"](1) == c["Version"](1)),
    ("eq plain subclass", lambda c: c["Point"](1) == c["Plain"](1)),
    ("eq to tuple", lambda c: c["Point"](1) == (1, 0, (), {}, "")),
    ("hash equal", lambda c: hash(c["Point"](1, extra={"a": "b"})) == hash(c["Point"](1))),
    ("hash value", lambda c: hash(c["Point"](1, 2))),
    ("hash one field", lambda c: hash(c["One"](1.5))),
    ("hash empty", lambda c: hash(c["Empty"]())),
    ("set of records", lambda c: len({c["Point"](1), c["Point"](1), c["Point"](2)})),
    ("repr", lambda c: repr(c["Point"](1, 2, ("t",), {"e": "f"}, "hidden"))),
    ("repr nested", lambda c: repr(c["Nested"](c["One"](1.0), (c["One"](2.0),)))),
    ("repr plain subclass", lambda c: repr(c["Plain"](3))),
    ("repr own", lambda c: repr(c["Secret"]("u", "p"))),
    ("repr empty", lambda c: repr(c["Empty"]())),
    ("frozen set", lambda c: setattr(c["Point"](1), "x", 2)),
    ("frozen set new", lambda c: setattr(c["Point"](1), "nope", 2)),
    ("frozen del", lambda c: delattr(c["Point"](1), "x")),
    ("plain subclass new attr", lambda c: setattr(c["Plain"](1), "nope", 2)),
    ("plain subclass field", lambda c: setattr(c["Plain"](1), "x", 2)),
    ("plain subclass method", lambda c: c["Plain"](4).double()),
    ("classvar not a field", lambda c: (c["Point"].LIMIT, c["Point"].__match_args__)),
    ("class default attr", lambda c: (c["Point"].y, c["Point"].note, hasattr(c["Point"], "extra"))),
    ("kw_only", lambda c: c["Child"](node="n", image="i")),
    ("kw_only positional", lambda c: c["Child"]("n", "i")),
    ("kw_only missing", lambda c: c["Child"](image="i")),
    ("inherited order", lambda c: repr(c["Grandchild"](node="n", image="i", flag=True))),
    ("inherited override default", lambda c: c["Grandchild"](node="n", image="i").name),
    (
        "factory fresh",
        lambda c: c["Child"](node="n", image="i").items is not c["Child"](node="n", image="i").items,
    ),
    ("match_args", lambda c: [c[k].__match_args__ for k in ("Point", "Base", "Child", "Mutable", "Version")]),
    ("mutable", lambda c: repr(c["Mutable"](1))),
    ("mutable set", lambda c: _set_and_repr(c["Mutable"](1))),
    ("mutable unhashable", lambda c: hash(c["Mutable"](1))),
    ("mutable init=False", lambda c: c["Mutable"](1, [2], c="x")),
    ("init=False default", lambda c: (c["Mutable"](1).c, c["Mutable"](1).d, c["Mutable"](1).log)),
    ("post_init", lambda c: c["Checked"](3).value),
    ("post_init raises", lambda c: c["Checked"](-1)),
    ("order", lambda c: sorted([c["Version"](2), c["Version"](1, 5), c["Version"](1, 2, "x")])),
    ("order compare=False", lambda c: c["Version"](1, 0, "a") <= c["Version"](1, 0, "b")),
    ("order other class", lambda c: c["Version"](1) < c["Point"](1)),
    ("own hash kept", lambda c: hash(c["OwnHash"](1))),
    (
        "own eq: unhashable",
        lambda c: (c["MutableWithEq"](1) == c["MutableWithEq"](2), c["MutableWithEq"].__hash__),
    ),
    ("nan field", lambda c: c["One"](float("nan")) == c["One"](float("nan"))),
    ("nan same object", lambda c: (lambda o: o == o)(c["One"](float("nan")))),
    ("pickle", lambda c: pickle.loads(pickle.dumps(c["Point"](1, 2))) == c["Point"](1, 2)),
    ("match", lambda c: _match(c["Point"](5, 6))),
]


def _set_and_repr(m: Any) -> str:
    m.a = 7
    m.b.append(1)
    return repr(m)


def _match(p: Any) -> Any:
    match p:
        case object(x=5, y=y):
            return ("matched", y)
    return None


@pytest.mark.parametrize(("name", "fn"), CASES, ids=[c[0] for c in CASES])
def test_same_behaviour_as_dataclasses(name: str, fn: Callable[[dict[str, type]], Any]) -> None:
    _same(fn)


def test_positional_match_uses_match_args() -> None:
    P = B["Point"]
    match P(1, 2):
        case P(a, b):
            assert (a, b) == (1, 2)
        case _:
            pytest.fail("no match")


@pytest.mark.parametrize("deco", BOTH)
def test_replace(deco: tuple[Deco, Deco, Callable[..., Any]]) -> None:
    dataclass, field, replace = deco

    @dataclass(frozen=True, kw_only=True)
    class R:
        a: int
        b: str = "b"
        c: list[int] = field(default_factory=list)
        hidden: int = field(default=0, init=False)

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative a")

    r = R(a=1, c=[1])
    s = replace(r, b="x")
    assert (s.a, s.b, s.c, s.c is r.c) == (1, "x", [1], True)
    assert replace(r) == r and replace(r) is not r
    with pytest.raises(ValueError, match="negative a"):
        replace(r, a=-1)
    with pytest.raises(ValueError, match="init=False"):
        replace(r, hidden=3)
    with pytest.raises(TypeError):
        replace(r, nope=1)


@pytest.mark.parametrize("deco", BOTH)
def test_definition_errors(deco: tuple[Deco, Deco, Callable[..., Any]]) -> None:
    dataclass, field, _ = deco
    with pytest.raises(ValueError, match="mutable default"):

        @dataclass
        class MutableDefault:
            a: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @dataclass
        class Order:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(ValueError, match="cannot specify both default and default_factory"):
        field(default=1, default_factory=int)

    @dataclass(frozen=True)
    class Frozen:
        a: int

    with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen one"):

        @dataclass
        class Thawed(Frozen):
            b: int = 0

    with pytest.raises(TypeError, match="no type annotation"):

        @dataclass
        class Unannotated:
            a = field(default=1)


def test_fields_and_frozen_error() -> None:
    P = B["Point"]
    assert [f.name for f in _records.fields(P)] == ["x", "y", "tags", "extra", "note"]
    assert [f.name for f in _records.fields(P(1))] == ["x", "y", "tags", "extra", "note"]
    with pytest.raises(TypeError):
        _records.fields(object())
    with pytest.raises(_records.FrozenInstanceError):
        P(1).x = 3  # type: ignore[misc]
    assert issubclass(_records.FrozenInstanceError, AttributeError)


def test_init_is_compiled_once_per_class_on_first_use() -> None:
    @_records.dataclass(frozen=True)
    class Lazy:
        a: int
        b: str = "b"

    stub = Lazy.__dict__["__init__"]
    assert Lazy(1) == Lazy(1, "b")
    real = Lazy.__dict__["__init__"]
    assert real is not stub and real.__qualname__.endswith("Lazy.__init__")
    Lazy(2)
    assert Lazy.__dict__["__init__"] is real
    import inspect

    assert str(inspect.signature(Lazy)) == "(a, b='b') -> None"

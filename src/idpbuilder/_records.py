"""``@dataclass`` for this project: the part of ``dataclasses`` the code uses, cheap to define at start-up.

Python 3.11's ``dataclasses.dataclass`` compiles six functions for every frozen class (``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``): about a millisecond per class, and
a build imports some seventy of them before it does anything. Here ``__repr__``, ``__eq__``, ``__hash__``,
the ordering methods and the frozen ``__setattr__``/``__delattr__`` are small closures over the class's field
names (nothing compiled), and ``__init__`` is compiled from source, as dataclasses does, on the class's first
instantiation (a class never instantiated in a run costs nothing).

Same behaviour as ``dataclasses`` for what it supports: ``frozen``, ``kw_only``, ``order``, ``eq`` (class
level); ``field(default=, default_factory=, init=, repr=, hash=, compare=, kw_only=)``; fields inherited from
base classes made with this decorator (in definition order, overridable); ``__post_init__``;
``__match_args__``; the same ``__eq__`` (same class only, field tuples compared), ``__hash__`` (the hash of
the field tuple; ``None`` for a non-frozen class with ``eq``; an explicit ``__hash__`` kept), ``__repr__``
and ``FrozenInstanceError`` (an ``AttributeError``); methods the class defines itself are kept. Not supported
(a ``TypeError`` says so): ``InitVar``, ``KW_ONLY``, ``slots``. ``ClassVar`` annotations are not fields.

The classes are not ``dataclasses`` dataclasses: use this module's ``replace`` and ``fields``, not the
``dataclasses`` functions. Type checkers see the decorator through ``typing.dataclass_transform``.
"""

from __future__ import annotations

import operator
from _thread import get_ident
from collections.abc import Callable
from operator import attrgetter
from typing import Any, ClassVar, TypeVar, dataclass_transform, overload

__all__ = ["Field", "FrozenInstanceError", "dataclass", "field", "fields", "replace"]

_T = TypeVar("_T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_HAS_DEFAULT_FACTORY: Any = type("_HasDefaultFactory", (), {"__repr__": lambda self: "<factory>"})()


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) a field of a frozen instance."""


class Field:
    """One field of a record class (what ``field()`` returns; ``fields()`` lists them)."""

    __slots__ = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare", "kw_only")

    def __init__(
        self,
        default: Any,
        default_factory: Any,
        init: bool,
        repr: bool,
        hash: bool | None,
        compare: bool,
        kw_only: Any,
    ) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r},type={self.type!r},default={self.default!r},"
            f"default_factory={self.default_factory!r},init={self.init!r},repr={self.repr!r},"
            f"hash={self.hash!r},compare={self.compare!r},kw_only={self.kw_only!r})"
        )


@overload
def field(
    *,
    default: _T,
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    kw_only: bool = ...,
) -> _T: ...
@overload
def field(
    *,
    default_factory: Callable[[], _T],
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    kw_only: bool = ...,
) -> _T: ...
@overload
def field(
    *,
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    kw_only: bool = ...,
) -> Any: ...
def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    init: bool = True,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    kw_only: Any = MISSING,
) -> Any:
    """A field with options, as ``dataclasses.field`` (no ``metadata``)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, init, repr, hash, compare, kw_only)


@overload
def dataclass(cls: type[_T], /) -> type[_T]: ...
@overload
def dataclass(
    *, eq: bool = True, order: bool = False, frozen: bool = False, kw_only: bool = False
) -> Callable[[type[_T]], type[_T]]: ...
@dataclass_transform(field_specifiers=(field,))
def dataclass(
    cls: type[_T] | None = None,
    /,
    *,
    eq: bool = True,
    order: bool = False,
    frozen: bool = False,
    kw_only: bool = False,
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Make ``cls`` a record class (see the module docstring); used as ``@dataclass`` or ``@dataclass(...)``."""

    def wrap(c: type[_T]) -> type[_T]:
        _process(c, eq=eq, order=order, frozen=frozen, kw_only=kw_only)
        return c

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in ``__init__`` order of definition."""
    try:
        found: tuple[Field, ...] = obj.__record_fields__
    except AttributeError:
        raise TypeError("must be called with a record class or instance") from None
    return found


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of record ``obj`` with ``changes`` applied, through ``__init__`` (``__post_init__`` runs)."""
    for f in fields(obj):
        if not f.init:
            if f.name in changes:
                raise ValueError(
                    f"field {f.name} is declared with init=False, it cannot be specified with replace()"
                )
        elif f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------- the class


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))
    return annotation is ClassVar or getattr(annotation, "__origin__", None) is ClassVar


def _unsupported(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("InitVar", "dataclasses.InitVar", "KW_ONLY", "dataclasses.KW_ONLY"))


def _collect(cls: type, kw_only: bool) -> dict[str, Field]:
    """Inherited fields (bases' order), then the class's own annotations (new fields appended)."""
    out: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:
        for f in base.__dict__.get("__record_fields__", ()):
            out[f.name] = f
    own = cls.__dict__.get("__annotations__", {})
    for name, annotation in own.items():
        if _is_classvar(annotation):
            continue
        if _unsupported(annotation):
            raise TypeError(f"{cls.__name__}.{name}: InitVar and KW_ONLY are not supported by _records")
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(value, MISSING, True, True, None, True, MISSING)
        f.name = name
        f.type = annotation
        if f.kw_only is MISSING:
            f.kw_only = kw_only
        if f.default is not MISSING and type(f.default).__hash__ is None:
            raise ValueError(
                f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory"
            )
        if isinstance(value, Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        out[name] = f
    for name, value in cls.__dict__.items():
        if isinstance(value, Field) and name not in own:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    return out


def _process(cls: type, *, eq: bool, order: bool, frozen: bool, kw_only: bool) -> None:
    for base in cls.__mro__[1:]:
        params = base.__dict__.get("__record_params__")
        if params is not None and params["frozen"] != frozen:
            raise TypeError(
                "cannot inherit frozen dataclass from a non-frozen one"
                if frozen
                else "cannot inherit non-frozen dataclass from a frozen one"
            )
    all_fields = _collect(cls, kw_only)
    flds = tuple(all_fields.values())
    cls.__record_fields__ = flds  # type: ignore[attr-defined]
    cls.__record_params__ = {"eq": eq, "order": order, "frozen": frozen}  # type: ignore[attr-defined]

    seen_default = False
    for f in flds:
        if f.init and not f.kw_only:
            if f.default is not MISSING or f.default_factory is not MISSING:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")

    def own(name: str) -> bool:
        return name in cls.__dict__

    def put(name: str, fn: Any) -> None:
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, fn)

    if not own("__init__"):
        put("__init__", _lazy_init(cls, flds, frozen))
    if not own("__repr__"):
        put("__repr__", _make_repr(tuple(f.name for f in flds if f.repr)))
    key = _key(tuple(f.name for f in flds if f.compare))
    if eq and not own("__eq__"):
        put("__eq__", _make_eq(key))
    if order:
        for name, op in (("__lt__", "lt"), ("__le__", "le"), ("__gt__", "gt"), ("__ge__", "ge")):
            if own(name):
                raise TypeError(f"cannot overwrite attribute {name} in class {cls.__name__}")
            put(name, _make_order(key, op))
    class_hash = cls.__dict__.get("__hash__", MISSING)
    explicit_hash = class_hash is not MISSING and not (class_hash is None and own("__eq__"))
    if eq and not explicit_hash:
        if frozen:
            put(
                "__hash__",
                _make_hash(_key(tuple(f.name for f in flds if (f.compare if f.hash is None else f.hash)))),
            )
        else:
            cls.__hash__ = None  # type: ignore[assignment]
    if frozen:
        for name in ("__setattr__", "__delattr__"):
            if own(name):
                raise TypeError(f"cannot overwrite attribute {name} in class {cls.__name__}")
        names = frozenset(f.name for f in flds)
        put("__setattr__", _frozen_setattr(cls, names))
        put("__delattr__", _frozen_delattr(cls, names))
    if not own("__match_args__"):
        cls.__match_args__ = tuple(f.name for f in flds if f.init and not f.kw_only)  # type: ignore[attr-defined,misc]


def _key(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of the named attributes (always a tuple, as dataclasses compares and hashes)."""
    if len(names) >= 2:
        return attrgetter(*names)
    if len(names) == 1:
        (name,) = names
        return lambda obj: (getattr(obj, name),)
    return lambda obj: ()


def _make_eq(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _make_order(key: Callable[[Any], tuple[Any, ...]], op: str) -> Callable[[Any, Any], Any]:
    compare = getattr(operator, op)

    def method(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return compare(key(self), key(other))
        return NotImplemented

    return method


def _make_hash(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(key(self))

    return __hash__


def _make_repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        guard = (id(self), get_ident())
        if guard in running:  # a record that contains itself (reprlib.recursive_repr, as dataclasses)
            return "..."
        running.add(guard)
        try:
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        finally:
            running.discard(guard)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _frozen_setattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str, Any], None]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _frozen_delattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str], None]:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __delattr__


def _lazy_init(cls: type, flds: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """An ``__init__`` that compiles the real one on the first call and puts it on the class."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        real = _compile_init(cls, flds, frozen)
        if cls.__dict__.get("__init__") is __init__:
            real.__qualname__ = f"{cls.__qualname__}.__init__"
            cls.__init__ = real  # type: ignore[misc]
        real(self, *args, **kwargs)

    return __init__


def _compile_init(cls: type, flds: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """The ``__init__`` dataclasses would write: positional fields, ``*``, keyword-only fields; body
    assigns (``object.__setattr__`` when frozen), calls default factories, then ``__post_init__``."""
    ns: dict[str, Any] = {"__MISSING_FACTORY": _HAS_DEFAULT_FACTORY, "__osa": object.__setattr__}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for i, f in enumerate(flds):
        value: str | None = f.name
        if f.init:
            param = f.name
            if f.default_factory is not MISSING:
                ns[f"__factory{i}"] = f.default_factory
                param += "=__MISSING_FACTORY"
                value = f"__factory{i}() if {f.name} is __MISSING_FACTORY else {f.name}"
            elif f.default is not MISSING:
                ns[f"__default{i}"] = f.default
                param += f"=__default{i}"
            (keyword if f.kw_only else positional).append(param)
        elif f.default_factory is not MISSING:
            ns[f"__factory{i}"] = f.default_factory
            value = f"__factory{i}()"
        else:
            value = None  # init=False with a plain default: the class attribute holds it
        if value is not None:
            body.append(f"__osa(self, {f.name!r}, {value})" if frozen else f"self.{f.name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    params = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    src = f"def __init__({params}) -> None:\n" + "".join(f"    {line}\n" for line in body or ["pass"])
    exec(compile(src, f"<record {cls.__qualname__}.__init__>", "exec", dont_inherit=True), ns)
    init: Callable[..., None] = ns["__init__"]
    init.__module__ = cls.__module__
    return init

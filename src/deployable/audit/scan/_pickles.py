"""The pickle walker: opcodes on a simulated stack, never unpickled, every global judged."""

from __future__ import annotations

import io
import math
import pickletools
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from deployable.audit.scan._allowlist import (
    _JOBLIB_INLINE_WRAPPER,
    _TORCH_LEGACY_MAGIC,
    _TORCH_LEGACY_PICKLES,
    _judge,
    _map_name,
)
from deployable.audit.scan._context import _BudgetExceeded, _Ctx, _finding, _peek
from deployable.audit.scan._kinds import _KEEP_CONSTANT, _looks_like_pickle, _sniff_nested
from deployable.core.records import Finding

# ---------------------------------------------------------------------------------------------------------------------
# Pickles
# ---------------------------------------------------------------------------------------------------------------------


class _SimError(Exception):
    """The opcodes do something the real unpickler would refuse (stack underflow, unknown memo key...)."""


class _Unverifiable(Exception):
    """A joblib array whose size cannot be worked out, so the rest of the stream cannot be found."""


class _Opaque:
    """A value the scanner does not track (a large constant, a persistent id, a set)."""

    __slots__ = ()


_OPAQUE = _Opaque()


class _Global:
    __slots__ = ("full",)

    def __init__(self, full: str):
        self.full = full


class _Obj:
    """The result of calling ``func`` (REDUCE, NEWOBJ, OBJ, INST), with the state BUILD gave it."""

    __slots__ = ("args", "func", "state")

    def __init__(self, func: Any, args: Any):
        self.func = func
        self.args = args
        self.state: Any = None


class _Dict:
    """A pickled dict: the (key, value) pairs, since keys may be untracked values."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[Any, Any]] | None = None):
        self.items = items or []

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in reversed(self.items):
            if isinstance(k, str) and k == key:
                return v
        return default


@dataclass
class _Use:
    """How one global is used in one pickle stream."""

    severity: str
    offset: int
    count: int = 0
    calls: int = 0


@dataclass
class _Tally:
    """What one pickle (or one stream of pickles) references that the allowlist does not cover."""

    uses: dict[str, _Use] = field(default_factory=dict)
    unresolved: list[int] = field(default_factory=list)
    extensions: list[tuple[int, int]] = field(default_factory=list)  # (code, offset)
    joblib: bool = False

    def merge(self, other: _Tally, *, only_critical: bool = False) -> None:
        for g, u in other.uses.items():
            if only_critical and u.severity != "critical":
                continue
            mine = self.uses.setdefault(g, _Use(u.severity, u.offset))
            mine.count += u.count
            mine.calls += u.calls
        if not only_critical:
            self.unresolved += other.unresolved
            self.extensions += other.extensions
        self.joblib = self.joblib or other.joblib


_CONSTANT_OPS = frozenset(
    {
        *("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"),
        *("STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"),
        *("UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"),
    }
)


@dataclass
class _Outcome:
    complete: bool
    value: Any = None
    error: str = ""
    offset: int = 0
    unverifiable: bool = False


class _Walker:
    """Walks one pickle's opcodes on a simulated stack, recording every global it imports; never unpickles.

    The simulation keeps what the checks need: string constants (so STACK_GLOBAL resolves through the memo like in
    fickling or modelscan), tuples, lists and dicts of them (so a joblib array wrapper's shape and dtype are known),
    which global every call goes to, and placeholders for everything else.
    """

    def __init__(self, ctx: _Ctx, tally: _Tally, *, member: str | None, depth: int, torchscript: bool):
        self.ctx = ctx
        self.tally = tally
        self.member = member
        self.depth = depth
        self.torchscript = torchscript
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}

    def run(self, f: BinaryIO) -> _Outcome:
        """Walk from the current position of ``f`` to the STOP opcode (``f`` is left just after it)."""
        pos = f.tell()
        try:
            for op, arg, pos in pickletools.genops(f):
                if op.name == "STOP":
                    return _Outcome(True, self.stack[-1] if self.stack else None)
                self.step(f, op.name, arg, pos)
        except (OSError, _BudgetExceeded):
            raise
        except _Unverifiable as exc:
            return _Outcome(False, error=str(exc), offset=pos, unverifiable=True)
        except Exception as exc:  # whatever genops or the simulation trips on: from here on it is not a valid pickle
            return _Outcome(False, error=str(exc) or type(exc).__name__, offset=pos)
        return _Outcome(False, error="no STOP opcode", offset=pos)  # pragma: no cover - genops raises first

    # -- stack helpers --------------------------------------------------------------------------------------------

    def pop(self) -> Any:
        if not self.stack:
            raise _SimError("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise _SimError("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise _SimError("no MARK on the stack")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def push(self, value: Any) -> None:
        self.stack.append(value)

    # -- globals --------------------------------------------------------------------------------------------------

    def use(self, module: str, name: str, offset: int, *, call: bool) -> _Global:
        module, name = _map_name(module, name)
        full = f"{module}.{name}"
        if full == _JOBLIB_INLINE_WRAPPER:
            self.tally.joblib = True
        severity = _judge(module, name, torchscript=self.torchscript)
        if severity is not None:
            u = self.tally.uses.setdefault(full, _Use(severity, offset))
            u.count += 1
            u.calls += call
        return _Global(full)

    def called(self, func: Any) -> None:
        if isinstance(func, _Global) and func.full in self.tally.uses:
            self.tally.uses[func.full].calls += 1

    # -- opcodes --------------------------------------------------------------------------------------------------

    def step(self, f: BinaryIO, name: str, arg: Any, pos: int) -> None:
        if name in _CONSTANT_OPS:
            if isinstance(arg, (str, bytes, bytearray)):
                self.nested(arg, pos)
                if len(arg) > _KEEP_CONSTANT:
                    arg = _OPAQUE
            self.push(arg)
        elif name == "NONE":
            self.push(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            self.push(name == "NEWTRUE")
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = self.top()
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _SimError(f"memo key {arg} was never stored")
            self.push(self.memo[arg])
        elif name == "EMPTY_LIST":
            self.push([])
        elif name == "EMPTY_TUPLE":
            self.push(())
        elif name == "EMPTY_DICT":
            self.push(_Dict())
        elif name == "EMPTY_SET":
            self.push(_OPAQUE)
        elif name == "LIST":
            self.push(self.pop_mark())
        elif name == "TUPLE":
            self.push(tuple(self.pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(self.stack) < n:
                raise _SimError("stack underflow")
            items = tuple(self.stack[-n:])
            del self.stack[-n:]
            self.push(items)
        elif name == "DICT":
            self.push(_Dict(_pairs(self.pop_mark())))
        elif name == "APPEND":
            value = self.pop()
            _extend(self.top(), [value])
        elif name == "APPENDS":
            items = self.pop_mark()
            _extend(self.top(), items)
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            _extend(self.top(), [(key, value)])
        elif name == "SETITEMS":
            pairs = _pairs(self.pop_mark())
            _extend(self.top(), pairs)
        elif name == "ADDITEMS":
            self.pop_mark()
            self.top()
        elif name == "FROZENSET":
            self.pop_mark()
            self.push(_OPAQUE)
        elif name == "POP":
            if self.stack:
                self.stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            self.push(self.top())
        elif name == "GLOBAL":
            module, _, gname = arg.partition(" ")
            self.push(self.use(module, gname, pos, call=False))
        elif name == "STACK_GLOBAL":
            gname, module = self.pop(), self.pop()
            if isinstance(module, str) and isinstance(gname, str):
                self.push(self.use(module, gname, pos, call=False))
            else:
                # the real unpickler accepts only str operands, but which str cannot be known without running it
                self.tally.unresolved.append(pos)
                self.push(_OPAQUE)
        elif name == "INST":
            module, _, gname = arg.partition(" ")
            args = self.pop_mark()
            self.push(_Obj(self.use(module, gname, pos, call=True), tuple(args)))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise _SimError("OBJ without a class")
            self.called(items[0])
            self.push(_Obj(items[0], tuple(items[1:])))
        elif name == "REDUCE":
            args = self.pop()
            func = self.top()
            self.called(func)
            self.stack[-1] = _Obj(func, args)
        elif name in ("NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                self.pop()  # keyword arguments
            args, cls = self.pop(), self.pop()
            self.called(cls)
            self.push(_Obj(cls, args))
        elif name == "BUILD":
            state = self.pop()
            obj = self.top()
            if isinstance(obj, _Obj):
                obj.state = state
                if _class_of(obj) == _JOBLIB_INLINE_WRAPPER:
                    self.skip_joblib_array(f, state)
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.tally.extensions.append((arg, pos))
            self.push(_OPAQUE)
        elif name in ("PERSID", "NEXT_BUFFER"):
            self.push(_OPAQUE)  # resolved by the loader (torch: a storage), never an import
        elif name == "BINPERSID":
            self.pop()
            self.push(_OPAQUE)
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        else:  # pragma: no cover - every opcode of protocol 5 is handled above
            raise _SimError(f"opcode {name} is not simulated")

    def nested(self, value: str | bytes | bytearray, pos: int) -> None:
        """Scan a constant that is itself a pickle, an archive or a compressed stream (``pickle.loads(b"...")``)."""
        if isinstance(value, str):
            try:
                head = value[:16].encode("latin-1")
            except UnicodeEncodeError:
                return
        else:
            head = bytes(value[:16])
        if not _sniff_nested(head):
            return
        data = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        member = f"{self.ctx.base(self.member)}#bytes@{pos}"
        self.ctx.descend(io.BytesIO(data), name="", member=member, depth=self.depth + 1)

    def skip_joblib_array(self, f: BinaryIO, state: Any) -> None:
        """Step over the array joblib writes right after each NumpyArrayWrapper (raw bytes or a nested pickle)."""
        if not isinstance(state, _Dict):
            raise _Unverifiable("a NumpyArrayWrapper without its usual state")
        shape, dtype = state.get("shape"), state.get("dtype")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise _Unverifiable(f"an array shape that cannot be read ({shape!r})")
        if _dtype_has_object(dtype):
            # object arrays are a complete pickle of their own, unpickled with the outer find_class
            outcome = _Walker(self.ctx, self.tally, member=self.member, depth=self.depth, torchscript=False).run(f)
            if not outcome.complete:
                raise _SimError(f"the pickle of an object array: {outcome.error}")
            return
        descr = dtype.args[0]
        dstate = dtype.state
        itemsize = dstate[5] if isinstance(dstate, tuple) and len(dstate) > 5 and type(dstate[5]) is int else -1
        if itemsize <= 0:  # fixed-size dtypes store -1 there
            try:
                import numpy as np

                itemsize = np.dtype(descr).itemsize
            except Exception as exc:  # TypeError/ValueError on a descr numpy does not know
                raise _Unverifiable(f"an array dtype {descr!r} numpy does not know") from exc
        if state.get("numpy_array_alignment_bytes", None) is not None:
            padding = f.read(1)
            if not padding:
                raise _SimError("the file ends inside a joblib array")
            f.seek(padding[0], io.SEEK_CUR)
        f.seek(math.prod(shape) * itemsize, io.SEEK_CUR)  # past the end: the next read fails as truncated


def _dtype_descr(dtype: Any) -> str:
    """The type string of a pickled ``numpy.dtype(descr, align, copy)`` call."""
    if (
        isinstance(dtype, _Obj)
        and isinstance(dtype.func, _Global)
        and dtype.func.full == "numpy.dtype"
        and isinstance(dtype.args, tuple)
        and dtype.args
        and isinstance(dtype.args[0], str)
    ):
        return dtype.args[0]
    raise _Unverifiable("an array dtype that cannot be read")


def _dtype_has_object(dtype: Any, depth: int = 0) -> bool:
    """numpy's ``dtype.hasobject`` on a pickled dtype: an object type, or one inside a subarray or a field.

    The dtype state is ``(version, byteorder, subarray, names, fields, itemsize, alignment, flags)``.
    """
    if depth > 8:
        raise _Unverifiable("an array dtype nested too deep")
    if _dtype_descr(dtype).startswith("O"):
        return True
    state = dtype.state
    if not isinstance(state, tuple) or len(state) < 5:
        return False
    subarray, fields = state[2], state[4]
    if isinstance(subarray, tuple) and subarray and _dtype_has_object(subarray[0], depth + 1):
        return True
    if isinstance(fields, _Dict):
        return any(isinstance(v, tuple) and v and _dtype_has_object(v[0], depth + 1) for _, v in fields.items)
    return False


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    if len(items) % 2:
        raise _SimError("odd number of items for a dict")
    return list(zip(items[::2], items[1::2], strict=True))


def _extend(target: Any, items: list[Any]) -> None:
    """APPEND(S)/SETITEM(S) on a tracked container, up to a size that keeps memory flat."""
    if isinstance(target, list) and len(target) < _KEEP_CONSTANT:
        target.extend(items)
    elif isinstance(target, _Dict) and len(target.items) < _KEEP_CONSTANT:
        target.items.extend(items)
    elif isinstance(target, (tuple, str, bytes, int, float)) or target is None:
        raise _SimError(f"cannot add items to a {type(target).__name__}")


def _class_of(obj: _Obj) -> str | None:
    """The class an object was made from (protocols 0 and 1 go through copyreg._reconstructor)."""
    if not isinstance(obj.func, _Global):
        return None
    if obj.func.full == "copyreg._reconstructor" and isinstance(obj.args, tuple) and obj.args:
        first = obj.args[0]
        return first.full if isinstance(first, _Global) else None
    return obj.func.full


def _scan_pickles(ctx: _Ctx, f: BinaryIO, *, member: str | None, depth: int, strict: bool, torchscript: bool) -> None:
    """Scan the pickles of a stream one after another and report each global once for the stream.

    Args:
        strict: the stream must be a pickle (named like one): a first pickle that does not parse to its STOP is a
            finding. Otherwise the content only started like a pickle: when it does not parse it is taken for data,
            and only critical globals seen before the failure are kept (random bytes do not spell ``os.system``).
    """
    at = len(ctx.findings)
    total = _Tally()
    failure: Finding | None = None
    index, legacy = 0, False
    while True:
        # torch's legacy format is five pickles (magic number, protocol, sys info, the object, storage keys)
        # followed by raw storages; a plain pickle file is one pickle, and a loader reads no further
        required = strict and (index == 0 or (legacy and index < _TORCH_LEGACY_PICKLES))
        start = f.tell()
        tally = _Tally()
        outcome = _Walker(ctx, tally, member=member, depth=depth, torchscript=torchscript).run(f)
        total.merge(tally, only_critical=not (outcome.complete or required))
        if not outcome.complete:
            if required:
                failure = _failure(ctx, member, outcome, start)
            break
        if index == 0 and type(outcome.value) is int and outcome.value == _TORCH_LEGACY_MAGIC:
            legacy = True
        index += 1
        head = _peek(f, 2)
        if legacy and index < _TORCH_LEGACY_PICKLES:
            if not head and strict:
                failure = _failure(ctx, member, _Outcome(False, error="the file ends", offset=start), start)
                break
            continue
        if not _looks_like_pickle(head):
            break
    if total.joblib and ctx.fmt == "pickle":
        ctx.fmt = "joblib"
    found = _tally_findings(ctx, total, member)
    if failure is not None:
        found.append(failure)
    ctx.findings[at:at] = found


def _failure(ctx: _Ctx, member: str | None, outcome: _Outcome, start: int) -> Finding:
    if outcome.unverifiable:
        return _finding(
            ctx,
            "unverifiable-joblib",
            "medium",
            f"joblib file with {outcome.error} at byte {outcome.offset}: the rest of the file cannot be located, "
            "so it was not verified",
            member,
            offset=outcome.offset,
        )
    return _finding(
        ctx,
        "unparseable-pickle",
        "medium",
        f"pickle cannot be parsed to its end ({outcome.error}; pickle starts at byte {start}): what follows byte "
        f"{outcome.offset} was not verified",
        member,
        offset=outcome.offset,
        error=outcome.error,
    )


def _tally_findings(ctx: _Ctx, tally: _Tally, member: str | None) -> list[Finding]:
    out = []
    for full, u in tally.uses.items():
        verb = "is called" if u.calls else "is imported"
        out.append(
            _finding(
                ctx,
                "unsafe-global" if u.severity == "critical" else "unknown-global",
                u.severity,
                f"{full} {verb} when this pickle is loaded (not on the allowlist of checkpoint globals)",
                member,
                # a memoized global is imported once and then called many times: count the larger
                **{"global": full, "count": max(u.count, u.calls), "imports": u.count, "calls": u.calls},
                offset=u.offset,
            )
        )
    if tally.unresolved:
        out.append(
            _finding(
                ctx,
                "unresolvable-global",
                "high",
                f"STACK_GLOBAL imports a name computed while loading, which cannot be checked without running the "
                f"pickle ({len(tally.unresolved)}x, first at byte {tally.unresolved[0]})",
                member,
                count=len(tally.unresolved),
                offset=tally.unresolved[0],
            )
        )
    if tally.extensions:
        codes = sorted({c for c, _ in tally.extensions})
        out.append(
            _finding(
                ctx,
                "extension-global",
                "high",
                f"imports globals by copyreg extension code {', '.join(map(str, codes[:5]))}: whatever the loading "
                "process registered under that code is called, which cannot be checked",
                member,
                codes=codes[:50],
                count=len(tally.extensions),
                offset=tally.extensions[0][1],
            )
        )
    return out

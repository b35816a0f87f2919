"""Compiles a CESQL tree into nested closures, once, for fast repeated evaluation.

Every closure takes an event and returns ``(value, error)``. Errors follow cesql/spec.md
section 3.3 in "fail fast" mode (section 4.1):

- an operator or function whose operand returns an error stops and returns the zero value of
  its own return type with that error (section 3.2: ``missing * 5`` is ``0`` plus a
  MissingAttributeError; ``1 / missing`` is not a MathError);
- an operator's own failed cast gives the zero value of the target type, the operator still
  computes, and the cast error is returned (section 3.7 "the cast result is false": ``NOT 10``
  is ``true`` plus a CastError, as in the TCK);
- ``AND`` and ``OR`` short-circuit (section 3.4.2), so an error right of a deciding operand is
  never seen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, Protocol

from knray.cesql.ast import (
    ARITHMETIC_OPERATORS,
    COMPARISON_OPERATORS,
    Binary,
    Call,
    Exists,
    Expression,
    Identifier,
    In,
    Like,
    Literal,
    Logical,
    Unary,
    depth,
    to_cesql,
    walk,
)
from knray.cesql.functions import BUILTIN_FUNCTIONS, Function, FunctionRegistry
from knray.cesql.like import compile_like
from knray.cesql.parser import MAX_DEPTH, parse
from knray.cesql.types import (
    INT32_MAX,
    INT32_MIN,
    Result,
    Type,
    Value,
    attribute_value,
    to_bool,
    to_int,
    to_str,
)
from knray.errors import (
    CESQLError,
    CESQLFunctionEvaluationError,
    CESQLMathError,
    CESQLMissingAttributeError,
    CESQLMissingFunctionError,
    CESQLParseError,
)

__all__ = ["AttributeSource", "CompiledExpression", "compile", "evaluate", "validate"]


class AttributeSource(Protocol):
    """What an expression reads attributes from: a ``knray.CloudEvent`` (or a plain dict)."""

    def get(self, name: str, default: Any = ..., /) -> Any: ...


Evaluator = Callable[[AttributeSource], Result]

_TRUE: Final[Result] = (True, None)
_FALSE: Final[Result] = (False, None)
_MISSING: Final[Any] = object()
_CAST_TO_CLASS: Final[dict[type, Callable[[Value], Result]]] = {
    str: to_str,
    int: to_int,
    bool: to_bool,
}
_CLASS_OF: Final[dict[Type, type]] = {Type.STRING: str, Type.INTEGER: int, Type.BOOLEAN: bool}


class CompiledExpression:
    """A parsed and compiled CESQL expression.

    ``evaluate(event)`` gives ``(value, error or None)``; ``matches(event)`` applies filter
    semantics. ``expression`` is the source text and ``ast`` the syntax tree.
    """

    __slots__ = ("_evaluate", "_functions", "ast", "expression")

    def __init__(
        self, tree: Expression, expression: str, evaluator: Evaluator, functions: FunctionRegistry
    ) -> None:
        self.ast = tree
        self.expression = expression
        self._evaluate = evaluator
        self._functions = functions

    def evaluate(self, event: AttributeSource) -> Result:
        """The value of the expression for ``event`` and the first error, if any."""
        return self._evaluate(event)

    def matches(self, event: AttributeSource) -> bool:
        """Filter semantics: True only when evaluation succeeds with the Boolean true.

        Section 1.2: "If the output value is not a Boolean or any errors are returned, the
        event MUST NOT pass the filter" (Knative's CESQL filter does the same).
        """
        value, error = self._evaluate(event)
        return error is None and value is True

    def __reduce__(self) -> tuple[Any, ...]:
        # Closures do not pickle; ship the tree and recompile (Ray moves filters between actors).
        functions = None if self._functions is BUILTIN_FUNCTIONS else self._functions
        return (_restore, (self.ast, self.expression, functions))

    def __repr__(self) -> str:
        return f"CompiledExpression({self.expression!r})"


def _restore(
    tree: Expression, expression: str, functions: FunctionRegistry | None
) -> CompiledExpression:
    registry = BUILTIN_FUNCTIONS if functions is None else functions
    return CompiledExpression(tree, expression, _Compiler(registry).compile(tree), registry)


def compile(
    expression: str | Expression, *, functions: FunctionRegistry | None = None
) -> CompiledExpression:
    """Parse (if needed) and compile an expression for repeated evaluation.

    Raises CESQLParseError for invalid syntax. Calls to unknown functions still compile and
    give a MissingFunctionError when evaluated (use :func:`validate` to refuse them early).
    """
    registry = BUILTIN_FUNCTIONS if functions is None else functions
    if isinstance(expression, str):
        return _compile_text(expression, registry)
    evaluator = _compile_tree(expression, registry)
    return CompiledExpression(expression, to_cesql(expression), evaluator, registry)


def _compile_tree(tree: Expression, registry: FunctionRegistry) -> Evaluator:
    if not isinstance(tree, Expression):
        raise TypeError(f"expected CESQL text or a syntax tree, got {type(tree).__name__}")
    if depth(tree) > MAX_DEPTH:
        raise CESQLParseError(f"expression nested deeper than {MAX_DEPTH} levels", position=0)
    return _Compiler(registry).compile(tree)


@functools.lru_cache(maxsize=1024)
def _compile_text(expression: str, registry: FunctionRegistry) -> CompiledExpression:
    tree = parse(expression)
    return CompiledExpression(tree, expression, _Compiler(registry).compile(tree), registry)


def evaluate(
    expression: str | Expression,
    event: AttributeSource,
    *,
    functions: FunctionRegistry | None = None,
) -> Result:
    """Evaluate an expression against an event: ``(value, first error or None)``.

    The value is a bool, int or str; when an error occurs it is the zero value the spec
    prescribes (section 3.3). Raises CESQLParseError when the text does not parse.
    """
    if isinstance(expression, str):
        return compile(expression, functions=functions).evaluate(event)
    return _compile_tree(expression, BUILTIN_FUNCTIONS if functions is None else functions)(event)


def validate(expression: str | Expression, *, functions: FunctionRegistry | None = None) -> None:
    """Load-time check, stricter than evaluation.

    Raises CESQLParseError for bad syntax and CESQLMissingFunctionError for a call to a
    function that does not exist with that number of arguments.
    """
    registry = BUILTIN_FUNCTIONS if functions is None else functions
    tree = parse(expression) if isinstance(expression, str) else expression
    for node in walk(tree):
        if isinstance(node, Call) and registry.resolve(node.name, len(node.arguments)) is None:
            raise CESQLMissingFunctionError(_missing_function_message(node, registry))


def _missing_function_message(node: Call, registry: FunctionRegistry) -> str:
    arity = len(node.arguments)
    overloads = registry.overloads(node.name)
    where = f"at position {node.position}"
    if not overloads:
        return f"unknown function {node.name} {where}"
    known = ", ".join(function.signature for function in overloads)
    plural = "" if arity == 1 else "s"
    return f"function {node.name} does not take {arity} argument{plural} {where} (known: {known})"


def _wrap(number: int) -> int:
    # Two's-complement wrap-around into the 32-bit range (section 3.1).
    return (number - INT32_MIN) % 2**32 + INT32_MIN


def _overflow(operator: str, left: int, right: int) -> CESQLMathError:
    return CESQLMathError(f"{left} {operator} {right} overflows a 32-bit integer")


def _add(left: int, right: int) -> Result:
    number = left + right
    if INT32_MIN <= number <= INT32_MAX:
        return number, None
    return _wrap(number), _overflow("+", left, right)


def _subtract(left: int, right: int) -> Result:
    number = left - right
    if INT32_MIN <= number <= INT32_MAX:
        return number, None
    return _wrap(number), _overflow("-", left, right)


def _multiply(left: int, right: int) -> Result:
    number = left * right
    if INT32_MIN <= number <= INT32_MAX:
        return number, None
    return _wrap(number), _overflow("*", left, right)


def _truncated_quotient(left: int, right: int) -> int:
    # Section 3.4.2: the quotient is rounded towards zero.
    quotient = abs(left) // abs(right)
    return -quotient if (left < 0) != (right < 0) else quotient


def _divide(left: int, right: int) -> Result:
    if right == 0:
        return 0, CESQLMathError(f"division by zero: {left} / 0")
    number = _truncated_quotient(left, right)
    if number > INT32_MAX:  # only INT32_MIN / -1
        return _wrap(number), _overflow("/", left, right)
    return number, None


def _modulo(left: int, right: int) -> Result:
    # Section 3.4.2: the remainder has the sign of the dividend.
    if right == 0:
        return 0, CESQLMathError(f"modulo by zero: {left} % 0")
    return left - right * _truncated_quotient(left, right), None


_ARITHMETIC: Final[dict[str, Callable[[int, int], Result]]] = {
    "+": _add,
    "-": _subtract,
    "*": _multiply,
    "/": _divide,
    "%": _modulo,
}
_ORDERING: Final[dict[str, Callable[[int, int], bool]]] = {
    "<": int.__lt__,
    "<=": int.__le__,
    ">": int.__gt__,
    ">=": int.__ge__,
}


class _Compiler:
    __slots__ = ("_functions",)

    def __init__(self, functions: FunctionRegistry) -> None:
        self._functions = functions

    def compile(self, node: Expression) -> Evaluator:
        if isinstance(node, Literal):
            return _literal(node.value)
        if isinstance(node, Identifier):
            return _identifier(node)
        if isinstance(node, Exists):
            return _exists(node.name)
        if isinstance(node, Unary):
            operand = self.compile(node.operand)
            return _not(operand) if node.operator == "NOT" else _negate(operand, node.position)
        if isinstance(node, Logical):
            operands = tuple(self.compile(operand) for operand in node.operands)
            return _and(operands) if node.operator == "AND" else _or(operands)
        if isinstance(node, Binary):
            return self._binary(node)
        if isinstance(node, Like):
            return _like(self.compile(node.operand), node.pattern, node.negated)
        if isinstance(node, In):
            return self._in(node)
        if isinstance(node, Call):
            return self._call(node)
        raise TypeError(f"not a CESQL node: {node!r}")

    def _binary(self, node: Binary) -> Evaluator:
        left = self.compile(node.left)
        right = self.compile(node.right)
        operator = node.operator
        if operator in ARITHMETIC_OPERATORS:
            return _arithmetic(_ARITHMETIC[operator], left, right)
        if operator in {"=", "!="}:
            if isinstance(node.left, Identifier) and isinstance(node.right, Literal):
                return _attribute_equals(node.left.name, node.right.value, operator == "=", left)
            return _equality(left, right, operator == "=")
        if operator in COMPARISON_OPERATORS:
            return _ordering(_ORDERING[operator], left, right)
        if operator == "XOR":
            return _xor(left, right)
        raise ValueError(f"unknown CESQL operator {operator!r}")

    def _in(self, node: In) -> Evaluator:
        operand = self.compile(node.operand)
        values = tuple(self.compile(value) for value in node.values)
        literal_sets: dict[type, frozenset[Value]] = {}
        if all(isinstance(value, Literal) for value in node.values):
            # Section 3.4.5: set elements are cast to the type of the left operand; cast once.
            constants = [value.value for value in node.values if isinstance(value, Literal)]
            for cls, cast in _CAST_TO_CLASS.items():
                results = [cast(constant) for constant in constants]
                if all(error is None for _, error in results):
                    literal_sets[cls] = frozenset(value for value, _ in results)
        return _membership(operand, values, literal_sets, node.negated)

    def _call(self, node: Call) -> Evaluator:
        function = self._functions.resolve(node.name, len(node.arguments))
        if function is None:
            # Section 3.5: a call that cannot be dispatched is false plus a MissingFunctionError.
            message = _missing_function_message(node, self._functions)

            def missing(event: AttributeSource) -> Result:
                return False, CESQLMissingFunctionError(message)

            return missing
        arguments = tuple(self.compile(argument) for argument in node.arguments)
        return _invoke(function, arguments, node.position)


def _literal(value: Value) -> Evaluator:
    result: Result = (value, None)

    def literal(event: AttributeSource) -> Result:
        return result

    return literal


def _identifier(node: Identifier) -> Evaluator:
    name = node.name
    message = f"missing attribute {name!r} at position {node.position}"

    def identifier(event: AttributeSource) -> Result:
        value = event.get(name, _MISSING)
        cls = value.__class__
        if cls is str or cls is bool or cls is int:
            return value, None
        if value is _MISSING or value is None:
            # Section 3.2: the zero value of an undetermined type is false.
            return False, CESQLMissingAttributeError(message)
        return attribute_value(value), None

    return identifier


def _exists(name: str) -> Evaluator:
    def exists(event: AttributeSource) -> Result:
        return _FALSE if event.get(name, None) is None else _TRUE

    return exists


def _not(operand: Evaluator) -> Evaluator:
    def not_(event: AttributeSource) -> Result:
        value, error = operand(event)
        if error is not None:
            return False, error
        if value is True:
            return _FALSE
        if value is False:
            return _TRUE
        value, error = to_bool(value)
        return (not value), error

    return not_


def _negate(operand: Evaluator, position: int) -> Evaluator:
    def negate(event: AttributeSource) -> Result:
        value, error = operand(event)
        if error is not None:
            return 0, error
        if value.__class__ is not int:
            value, error = to_int(value)
        number = -int(value)
        if number > INT32_MAX:  # -(-2147483648)
            return INT32_MIN, error or CESQLMathError(
                f"-({INT32_MIN}) overflows a 32-bit integer at position {position}"
            )
        return number, error

    return negate


def _and(operands: tuple[Evaluator, ...]) -> Evaluator:
    def and_(event: AttributeSource) -> Result:
        for operand in operands:
            value, error = operand(event)
            if error is not None:
                return False, error
            if value is True:
                continue
            if value is False:
                return _FALSE
            value, error = to_bool(value)
            if error is not None or not value:
                return False, error
        return _TRUE

    return and_


def _or(operands: tuple[Evaluator, ...]) -> Evaluator:
    first, rest = operands[0], operands[1:]

    def or_(event: AttributeSource) -> Result:
        # Equivalent to the right-nested binary form: only the outermost node's own cast
        # error (on the first operand) lets evaluation go on; any later error ends it.
        value, own = first(event)
        if own is not None:
            return False, own
        if value is True:
            return _TRUE
        if value is not False:
            value, own = to_bool(value)
            if value is True:
                return _TRUE
        for operand in rest:
            value, error = operand(event)
            if error is not None:
                return False, own or error
            if value is True:
                return True, own
            if value is False:
                continue
            value, error = to_bool(value)
            if error is not None:
                return False, own or error
            if value:
                return True, own
        return False, own

    return or_


def _xor(left: Evaluator, right: Evaluator) -> Evaluator:
    def xor(event: AttributeSource) -> Result:
        a, error = left(event)
        if error is not None:
            return False, error
        b, error = right(event)
        if error is not None:
            return False, error
        if a.__class__ is not bool:
            a, error = to_bool(a)
        if b.__class__ is not bool:
            b, second = to_bool(b)
            error = error or second
        return (a is not b), error

    return xor


def _arithmetic(
    operation: Callable[[int, int], Result], left: Evaluator, right: Evaluator
) -> Evaluator:
    def arithmetic(event: AttributeSource) -> Result:
        a, error = left(event)
        if error is not None:
            return 0, error
        b, error = right(event)
        if error is not None:
            return 0, error
        if a.__class__ is not int:
            a, error = to_int(a)
        if b.__class__ is not int:
            b, second = to_int(b)
            error = error or second
        number, failure = operation(int(a), int(b))
        return number, error or failure

    return arithmetic


def _ordering(compare: Callable[[int, int], bool], left: Evaluator, right: Evaluator) -> Evaluator:
    # Section 3.4.2: < <= > >= are defined on Integers only, so both sides become Integers.
    def ordering(event: AttributeSource) -> Result:
        a, error = left(event)
        if error is not None:
            return False, error
        b, error = right(event)
        if error is not None:
            return False, error
        if a.__class__ is not int:
            a, error = to_int(a)
        if b.__class__ is not int:
            b, second = to_int(b)
            error = error or second
        return compare(int(a), int(b)), error

    return ordering


def _equality(left: Evaluator, right: Evaluator, equal: bool) -> Evaluator:
    # Section 3.7: = is ambiguous, so the left operand is cast to the type of the right one.
    def equality(event: AttributeSource) -> Result:
        a, error = left(event)
        if error is not None:
            return False, error
        b, error = right(event)
        if error is not None:
            return False, error
        cls = b.__class__
        if a.__class__ is not cls:
            a, error = _CAST_TO_CLASS[cls](a)
        return ((a == b) is equal), error

    return equality


def _attribute_equals(name: str, constant: Value, equal: bool, general: Evaluator) -> Evaluator:
    # The common `attr = 'literal'`: read the attribute directly when it already has the
    # literal's type; anything else (missing, cast needed) takes the general path.
    cls = constant.__class__
    cast = _CAST_TO_CLASS[cls]
    same = _TRUE if equal else _FALSE
    different = _FALSE if equal else _TRUE

    def attribute_equals(event: AttributeSource) -> Result:
        value = event.get(name, _MISSING)
        if value.__class__ is cls:
            return same if value == constant else different
        value, error = general(event)
        if error is not None:
            return False, error
        if value.__class__ is not cls:
            value, error = cast(value)
        return ((value == constant) is equal), error

    return attribute_equals


def _like(operand: Evaluator, pattern: str, negated: bool) -> Evaluator:
    # Section 3.4.3: the left operand is cast to String; the pattern is compiled once.
    matcher = compile_like(pattern)
    hit = _FALSE if negated else _TRUE
    miss = _TRUE if negated else _FALSE

    def like(event: AttributeSource) -> Result:
        value, error = operand(event)
        if error is not None:
            return False, error
        if value.__class__ is not str:
            value = to_str(value)[0]
        return hit if matcher(str(value)) else miss

    return like


def _membership(
    operand: Evaluator,
    values: tuple[Evaluator, ...],
    literal_sets: dict[type, frozenset[Value]],
    negated: bool,
) -> Evaluator:
    hit = _FALSE if negated else _TRUE
    miss = _TRUE if negated else _FALSE

    def membership(event: AttributeSource) -> Result:
        needle, error = operand(event)
        if error is not None:
            return False, error
        cls = needle.__class__
        constants = literal_sets.get(cls)
        if constants is not None:
            return hit if needle in constants else miss
        # Section 3.4.5: each element is cast to the left operand's type; stops at a match.
        cast = _CAST_TO_CLASS[cls]
        own: CESQLError | None = None
        for value_of in values:
            value, error = value_of(event)
            if error is not None:
                return False, own or error
            if value.__class__ is not cls:
                value, error = cast(value)
                own = own or error
            if value == needle:
                return (hit[0], own)
        return (miss[0], own)

    return membership


def _invoke(function: Function, arguments: tuple[Evaluator, ...], position: int) -> Evaluator:
    name = function.name
    zero = function.returns.zero
    returns = _CLASS_OF.get(function.returns)
    implementation = function.implementation
    fixed = function.parameters
    types = [*fixed, *([function.variadic] * (len(arguments) - len(fixed)))]
    plan = tuple(
        (argument, _CLASS_OF.get(kind) if kind is not None else None)
        for argument, kind in zip(arguments, types, strict=True)
    )

    def invoke(event: AttributeSource) -> Result:
        values: list[Value] = []
        own: CESQLError | None = None
        for argument, cls in plan:
            value, error = argument(event)
            if error is not None:
                return zero, error
            if cls is not None and value.__class__ is not cls:
                value, error = _CAST_TO_CLASS[cls](value)
                own = own or error
            values.append(value)
        try:
            value, error = implementation(values)
        except Exception as exc:
            # Section 3.5.3: a failing function gives its zero value and a
            # FunctionEvaluationError.
            return zero, own or CESQLFunctionEvaluationError(
                f"{name} failed at position {position}: {exc}"
            )
        if returns is not None and value.__class__ is not returns:
            return zero, own or CESQLFunctionEvaluationError(
                f"{name} returned {value!r}, not a {function.returns.value}"
            )
        return value, own or error

    return invoke

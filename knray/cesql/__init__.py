"""CloudEvents SQL (CESQL) v1.0: parser, compiler and evaluator (cloudevents/spec cesql/spec.md).

>>> from knray import CloudEvent
>>> event = CloudEvent({"specversion": "1.0", "id": "1", "source": "/s", "type": "com.example.a"})
>>> compile("type LIKE 'com.example.%'").matches(event)
True
>>> evaluate("missing * 5", event)[0]
0
"""

from knray.cesql.ast import Expression, to_cesql
from knray.cesql.compiler import AttributeSource, CompiledExpression, compile, evaluate, validate
from knray.cesql.functions import BUILTIN_FUNCTIONS, Function, FunctionRegistry
from knray.cesql.parser import MAX_DEPTH, parse
from knray.cesql.types import Result, Type, Value

__all__ = [
    "BUILTIN_FUNCTIONS",
    "MAX_DEPTH",
    "AttributeSource",
    "CompiledExpression",
    "Expression",
    "Function",
    "FunctionRegistry",
    "Result",
    "Type",
    "Value",
    "compile",
    "evaluate",
    "parse",
    "to_cesql",
    "validate",
]

"""Small, careful helpers: metric names in PromQL expressions and in /metrics exposition."""

from __future__ import annotations

import re

# PromQL functions (Prometheus 2.x/3.x), all written `name(`; names are case-sensitive.
FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan",
        "atanh", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
        "cos", "cosh", "count_over_time", "day_of_month", "day_of_week", "day_of_year",
        "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "end",
        "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
        "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
        "holt_winters", "hour", "idelta", "increase", "info", "irate", "label_join",
        "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
        "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
        "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round",
        "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
        "sort_desc", "sqrt", "start", "stddev_over_time", "stdvar_over_time",
        "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
    }
)  # fmt: skip

# Aggregation operators are keywords: case-insensitive, unlike function names.
AGGREGATIONS = frozenset(
    {"avg", "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max",
     "min", "quantile", "stddev", "stdvar", "sum", "topk"}
)  # fmt: skip

# Words that are never metric names where they stand (binary operators, modifiers, literals).
KEYWORDS = frozenset(
    {"and", "or", "unless", "atan2", "bool", "offset", "by", "without", "on", "ignoring",
     "group_left", "group_right", "inf", "nan"}
)  # fmt: skip

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r"__name__\s*(=~|!~|!=|=)\s*(\"(?:\\.|[^\"\\])*\"|'[^']*'|`[^`]*`)")
_COMMENT = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
# An identifier that does not start inside a number (1e3, 0x1f, 5m) or another identifier.
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)")
_CALL = re.compile(r"\s*\(")


class PromQLNameError(ValueError):
    """The expression uses something the extractor cannot resolve to metric names."""


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects; raise on unknown functions.

    Not a parser: it removes what cannot hold a metric name (strings, comments, label
    matchers, range and subquery brackets, by/without/on/ignoring/group_x label lists,
    Grafana variables, numbers and durations), then every remaining identifier is a
    function call (followed by `(`), a keyword, or a metric name.
    """
    names: set[str] = set()
    text = _COMMENT.sub(" ", _STRING.sub(_protect_hashes, expr))
    for operator, quoted in _NAME_MATCHER.findall(text):
        if operator != "=":
            raise PromQLNameError(f"__name__{operator} cannot be checked: {expr!r}")
        names.add(quoted[1:-1])
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub(" ", text)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENTIFIER.finditer(text):
        word = match.group(1)
        if word.lower() in KEYWORDS:  # `a and (b)`: a keyword may precede a parenthesis
            continue
        if _CALL.match(text, match.end()):
            if word not in FUNCTIONS and word.lower() not in AGGREGATIONS:
                raise PromQLNameError(f"unknown PromQL function {word}() in {expr!r}")
            continue
        names.add(word)
    return names


def _protect_hashes(match: re.Match[str]) -> str:
    # A '#' inside a string starts no comment; strings stay otherwise whole in this first
    # pass because the value of a __name__ matcher is still needed.
    return match.group(0).replace("#", "\x00")


def exported_names(exposition: str) -> set[str]:
    """Series names a Prometheus text exposition offers, including families with no samples.

    A family declared with `# TYPE` but without samples yet (a labelled counter never
    incremented) still counts: the process exports it as soon as it happens.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) < 4:
                continue
            name, kind = parts[2], parts[3]
            names.add(name)
            if kind == "counter":
                base = name.removesuffix("_total")
                names.update({f"{base}_total", f"{base}_created"})
            elif kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"})
            elif kind == "summary":
                names.update({f"{name}_sum", f"{name}_count", f"{name}_created"})
            elif kind == "gaugehistogram":
                names.update({f"{name}_bucket", f"{name}_gsum", f"{name}_gcount"})
        elif line and not line.startswith("#"):
            match = _IDENTIFIER.match(line)
            if match:
                names.add(match.group(1))
    return names

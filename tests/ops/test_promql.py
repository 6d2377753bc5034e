"""The metric-name extractor the dashboard and alert checks rely on."""

from __future__ import annotations

import pytest

from tests.ops.promql import PromQLNameError, exported_names, metric_names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", {"up"}),
        (
            'sum by (provider) (rate(gateway_events_published_total{type="order.created"}[5m]))',
            {"gateway_events_published_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, path) "
            "(rate(gateway_request_duration_seconds_bucket[$__rate_interval])))",
            {"gateway_request_duration_seconds_bucket"},
        ),
        (
            '(sum(rate(a_total{outcome="succeeded"}[15m])) or vector(0)) / sum(rate(a_total[15m]))'
            " < 0.9 and sum(increase(a_total[15m])) >= 20",
            {"a_total"},
        ),
        ('absent(up{job="worker"} == 1)', {"up"}),
        ("x_total unless x_total offset 30m", {"x_total"}),
        ("deriv(max(lag_seconds)[10m:1m]) > 0", {"lag_seconds"}),
        ("a / on(instance) group_left(version) b", {"a", "b"}),
        ("a * ignoring (code) group_right b", {"a", "b"}),
        ("sum without (instance) (x) > bool 1e3", {"x"}),
        ('label_replace(up, "host", "$1", "instance", "(.*):[0-9]+")', {"up"}),
        ('label_join(up, "x", "{,}", "a", "b")', {"up"}),
        ('{__name__="process_cpu_seconds_total", job="gateway"}', {"process_cpu_seconds_total"}),
        ("job:requests:rate5m > 0x1f", {"job:requests:rate5m"}),
        ('up # a comment with a } and rate(\n+ down{a="#"}', {"up", "down"}),
        ("SUM BY (le) (x) AND ON() y", {"x", "y"}),
        ("topk(5, x) @ start()", {"x"}),
        ("a and\n(b > 1) or (c) unless\t(d)", {"a", "b", "c", "d"}),
        ('count_values("v", build_info) > ${threshold}', {"build_info"}),
    ],
)
def test_metric_names(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


@pytest.mark.parametrize(
    "expr",
    ["rates(x[5m])", "RATE(x[5m])", "histogram_quantiles(0.9, x)", '{__name__=~"gateway_.*"}'],
)
def test_unknown_functions_and_name_regexes_are_refused(expr: str) -> None:
    with pytest.raises(PromQLNameError):
        metric_names(expr)


def test_exported_names_include_families_without_samples() -> None:
    exposition = "\n".join(
        [
            "# HELP c_total A counter.",
            "# TYPE c_total counter",
            "# HELP h A histogram.",
            "# TYPE h histogram",
            'h_bucket{le="1.0"} 0.0',
            "# HELP g A gauge.",
            "# TYPE g gauge",
            "g 1.0",
            "# HELP s A summary.",
            "# TYPE s summary",
            "# HELP untyped_thing x",
            'loose_sample{a="b"} 2',
        ]
    )
    assert exported_names(exposition) == {
        "c_total",
        "c_created",
        "h",
        "h_bucket",
        "h_sum",
        "h_count",
        "h_created",
        "g",
        "s",
        "s_sum",
        "s_count",
        "s_created",
        "loose_sample",
    }

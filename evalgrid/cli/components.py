"""``evalgrid components``: what the catalogue holds: every factor's values, with each
component's origin (evalgrid or an installed package), options and presets; the metrics; and
the label inference rules. Reads the catalogue only: imports no torch."""

from __future__ import annotations

import dataclasses
import typing

import click

from evalgrid.catalogue.options import describe_type

EXTRA_SECTIONS = ("metrics", "label_rules")  # catalogue kinds that are not factors of the grid


@click.command("components")
@click.argument("factor", required=False)
def command(factor: str | None) -> None:
    """List the values a grid may give FACTOR (default: every factor), with each component's
    origin, options, their defaults (the paper's preset) and what they mean; `metrics` and
    `label_rules` list those.

    \b
    Example:
      evalgrid components defense
      evalgrid components metrics
    """
    from evalgrid.catalogue import ATTACKS
    from evalgrid.catalogue.registry import UnknownName
    from evalgrid.grid.factors import FACTORS

    ATTACKS.names()  # loads the catalogue: a broken plugin fails before anything is listed
    if factor is not None and factor not in FACTORS and factor not in EXTRA_SECTIONS:
        raise UnknownName("factor", factor, [*FACTORS.names(), *EXTRA_SECTIONS])
    names = [factor] if factor else [*FACTORS.names(), *EXTRA_SECTIONS]
    for name in names:
        if name == "metrics":
            _metrics()
        elif name == "label_rules":
            _label_rules()
        else:
            _factor(FACTORS[name])


def _factor(entry) -> None:
    from evalgrid.grid.factors import REQUIRED

    default = " (required)" if entry.default is REQUIRED else f" (default {entry.default!r})"
    click.echo(f"{entry.name}: {entry.summary}{default}")
    registry = getattr(entry, "registry", None)
    if registry is None:
        click.echo(f"  values: {getattr(entry, 'choices', None) or type(entry).__name__.replace('Factor', '').lower()}")
        return
    for component_name in registry.names():
        component = registry[component_name]
        click.echo(f"  {component_name}: {component.summary}  [{component.origin}]")
        hints = typing.get_type_hints(component.options)
        for field in dataclasses.fields(component.options):
            doc = field.metadata.get("doc", "")
            kind = describe_type(hints[field.name], field.metadata.get("choices"))
            click.echo(f"      {field.name} = {field.default!r}  ({kind}){'  ' + doc if doc else ''}")


def _metrics() -> None:
    from evalgrid.catalogue import METRICS

    click.echo("metrics: what each cell measures (the grid's `metrics` list)")
    for name in METRICS:
        metric = METRICS[name]
        facts = [metric.metric_kind, "higher is better" if metric.higher_is_better else "lower is better"]
        if metric.per_sample:
            facts.append(f"per sample in {name}_per_sample")
        if metric.reads:
            facts.append(f"reads [metric_options] {', '.join(metric.reads)}")
        if metric.requires:
            facts.append(f"computed with {', '.join(metric.requires)}")
        click.echo(f"  {name}: {metric.summary}  [{metric.origin}]")
        click.echo(f"      {'; '.join(facts)}")


def _label_rules() -> None:
    from evalgrid.catalogue import LABEL_RULES

    click.echo("label_rules: label inference rules, the values of an attack's label_inference option")
    for name in LABEL_RULES:
        click.echo(f"  {name}: {LABEL_RULES[name].summary}  [{LABEL_RULES[name].origin}]")

"""``evalgrid components``: every factor's registered values, their options and presets."""

from __future__ import annotations

import dataclasses

import click

from evalgrid.options import describe_type


@click.command("components")
@click.argument("factor", required=False)
def command(factor: str | None) -> None:
    """List the values a grid may give FACTOR (default: every factor), with each component's
    options, their defaults (the paper's preset) and what they mean.

    \b
    Example:
      evalgrid components defense
    """
    import typing

    from evalgrid.grid.factors import FACTORS, REQUIRED

    names = [factor] if factor else FACTORS.names()
    for name in names:
        entry = FACTORS[name]  # an unknown factor raises, listing the valid ones
        default = " (required)" if entry.default is REQUIRED else f" (default {entry.default!r})"
        click.echo(f"{name}: {entry.summary}{default}")
        registry = getattr(entry, "registry", None)
        if registry is None:
            click.echo(f"  values: {getattr(entry, 'choices', None) or type(entry).__name__.replace('Factor', '').lower()}")
            continue
        for component_name in registry.names():
            component = registry[component_name]
            click.echo(f"  {component_name}: {component.summary}")
            hints = typing.get_type_hints(component.options)
            for field in dataclasses.fields(component.options):
                doc = field.metadata.get("doc", "")
                click.echo(f"      {field.name} = {field.default!r}  ({describe_type(hints[field.name])})"
                           f"{'  ' + doc if doc else ''}")

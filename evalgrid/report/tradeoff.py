"""The report's privacy-utility view: a scatter of each setting's privacy against its utility,
numbered points with a key table under it. Utility belongs to the trained federation, so across
stages privacy at the attacked round pairs with the most-trained round's utility
(:func:`evalgrid.report.aggregate.tradeoff_points`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from evalgrid.report import plots
from evalgrid.report.aggregate import TradeoffPoint, tradeoff_points
from evalgrid.report.html import image, png_uri, text
from evalgrid.report.options import ReportOptions
from evalgrid.report.run import Level, RunView
from evalgrid.report.views import decimals

MAX_NUMBERED_POINTS = 40  # more points than this: no numbers on the plot, the key table only
MAX_KEY_ROWS = 150
MAX_PRIVACY_PANELS = 2  # the first image metrics measured (PSNR, then SSIM or LPIPS)
STAGE = "stage"


def tradeoff_section(view: RunView, options: ReportOptions) -> str:
    """Privacy (PSNR, LPIPS) against utility (defended accuracy, else accuracy), one panel per
    privacy metric, colour per defense (else the first factor), marker per stage; "" unless both
    were measured."""
    utility = next(iter(view.utility_metrics), None)
    privacy = list(view.image_metrics[:MAX_PRIVACY_PANELS])
    if utility is None or not privacy:
        return ""
    compared = view.compared
    points = tradeoff_points(view.done, utility, privacy, compared, STAGE)
    if not points:
        return ""
    colour = "defense" if "defense" in compared else next((f for f in compared if f != STAGE), None)
    marker = STAGE if STAGE in compared else colour
    colours, colour_levels = _indices(points, compared, colour, view.levels)
    markers, marker_levels = _indices(points, compared, marker, view.levels)
    panels = [(m, [p.privacy[i] for p in points]) for i, m in enumerate(privacy)]
    x_label = f"{utility}{_round_text(points)}"
    numbered = len(points) <= MAX_NUMBERED_POINTS
    png = plots.tradeoff_plot(x_label, [p.utility for p in points], panels, colours, markers,
                              plots.Legend(colour, colour_levels) if colour else None,
                              plots.Legend(marker, marker_levels) if marker and marker != colour else None,
                              numbered=numbered)
    caption = _tradeoff_caption(utility, privacy, points, colour, marker, numbered)
    return (f'<figure class="tradeoff" data-utility="{text(utility)}">'
            f'{image(png_uri(png), f"privacy against {utility}")}<figcaption>{text(caption)}</figcaption></figure>'
            + _key_table(points, compared, utility, privacy))


def _indices(points: Sequence[TradeoffPoint], compared: Sequence[str], factor: str | None,
             grid_levels: Mapping[str, Sequence[Level]]) -> tuple[list[int], list[str]]:
    """Each point's index among the levels of ``factor`` that have a point, in grid order (0
    without a factor), and those levels."""
    if factor is None:
        return [0] * len(points), []
    position = compared.index(factor)
    present = {p.levels[position] for p in points}
    levels = [level for level in grid_levels[factor] if level in present]
    levels += [level for level in dict.fromkeys(p.levels[position] for p in points) if level not in levels]
    return [levels.index(p.levels[position]) for p in points], [str(level) for level in levels]


def _round_text(points: Sequence[TradeoffPoint]) -> str:
    rounds = sorted({p.utility_round for p in points if p.utility_round is not None})
    if not rounds:
        return ""
    return f" at round {rounds[0]}" if len(rounds) == 1 else f" at rounds {rounds[0]}-{rounds[-1]}"


def _tradeoff_caption(utility: str, privacy: Sequence[str], points: Sequence[TradeoffPoint], colour: str | None,
                      marker: str | None, numbered: bool) -> str:
    key = "numbered: the key below" if numbered else f"over {MAX_NUMBERED_POINTS} points: the key below lists them"
    said = [f"Each point is one setting, its mean over seeds ({key})."]
    rounds = _round_text(points)
    if rounds:
        said.append(f"Privacy ({' and '.join(privacy)}) at the attacked round, utility ({utility}){rounds}: "
                    f"the most-trained stage of the same setting and seed, since utility is a property of the "
                    f"trained federation.")
    else:
        said.append(f"x = {utility}, y = {' and '.join(privacy)} of the same cells.")
    if colour:
        said.append(f"Colour: {colour}" + (f"; marker: {marker}." if marker and marker != colour else "."))
    return " ".join(said)


def _key_table(points: Sequence[TradeoffPoint], compared: Sequence[str], utility: str,
               privacy: Sequence[str]) -> str:
    head = ("<th>#</th>" + "".join(f"<th>{text(f)}</th>" for f in compared)
            + "".join(f'<th class="num">{text(m)}</th>' for m in (utility, *privacy)) + '<th class="num">seeds</th>')
    places = [decimals([p.utility for p in points])] + [
        decimals([p.privacy[i] for p in points]) for i in range(len(privacy))]
    body = ""
    for number, point in enumerate(points[:MAX_KEY_ROWS], start=1):
        values = (point.utility, *point.privacy)
        body += (f'<tr><td class="num">{text(number)}</td>'
                 + "".join(f"<td>{text(level)}</td>" for level in point.levels)
                 + "".join(f'<td class="num">{text("" if math.isnan(v) else f"{v:.{digits}f}")}</td>'
                           for v, digits in zip(values, places))
                 + f'<td class="num">{text(point.seeds)}</td></tr>')
    capped = (f'<p class="note">{text(f"Showing the first {MAX_KEY_ROWS} of {len(points)} points.")}</p>'
              if len(points) > MAX_KEY_ROWS else "")
    return (f'<div class="table-scroll"><table class="numbers key"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>{capped}")

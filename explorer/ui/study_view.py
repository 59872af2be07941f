"""The shipped results of the two multi-seed studies (explorer.studies), as a panel shows them: a chart and
its text, drawn from the study's JSON beside the shipped checkpoint and redrawn only when that file changes."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import plotting, studies


def view(root, study_name: str, dataset: str | None = None) -> tuple[np.ndarray | None, str]:
    """(the chart's pixels or None, markdown) for ``study_name`` ("gamix" or "dae-sweep") as shipped with
    ``dataset``'s checkpoint (default: the study's dataset) under zoo ``root``."""
    study = studies.STUDIES[study_name]
    path = Path(root) / (dataset or study.dataset) / study.ship_to[0] / study.result_file
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None, (f"Not run yet. Run it with `python -m explorer.studies run {study_name} --hours 2` (resumable; "
                      f"run it again to continue), then `python -m explorer.studies summary {study_name} --ship`.")
    return _render(str(path), mtime, study_name, plotting.text_scale())


@lru_cache(maxsize=8)
def _render(path: str, mtime: int, study_name: str, text_scale: float) -> tuple[np.ndarray | None, str]:
    """``text_scale`` is only part of the cache key: the chart is rendered at the current one."""
    try:
        summary = json.loads(Path(path).read_text())
        text = studies.summary_markdown(summary)
        pixels = plotting.Raster.pixels_of(studies.chart(summary))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, (f"⚠️ The shipped results of this study are damaged ({type(err).__name__}); rebuild them with "
                      f"`python -m explorer.studies summary {study_name} --ship`.")
    return pixels, text

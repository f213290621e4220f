"""Score bands: how the admin groups leads by their score, from the active model's threshold.

`qualified` is at or over the model's total threshold (recycled to sales when fit allows),
`warm` is from half the threshold, `cold` below it (a lead never scored is worth 0: cold).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from nurture.leads.search import ScoreBand, ScoreScale
from nurture.scoring.document import default_document
from nurture.scoring.lifecycle import active_model, document_of
from nurture.scoring.live import half_life_s


def score_scale(session: Session) -> ScoreScale:
    """The bands and decay of the active model (the default model's before any is active)."""
    model = active_model(session)
    document = document_of(model) if model is not None else default_document()
    threshold = document.thresholds.total
    half = threshold / 2
    bands = (
        ScoreBand("qualified", f"Qualified ({threshold:g}+)", threshold, None),
        ScoreBand("warm", f"Warm ({half:g}–{threshold:g})", half, threshold),
        ScoreBand("cold", f"Cold (under {half:g})", None, half),
    )
    return ScoreScale(half_life_s(document), bands, model.version if model else None)

"""What the collateral endpoints accept."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from nurture.fields import forbid_nul
from nurture.models import FunnelStage

Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(forbid_nul),
]


class CollateralVersionIn(BaseModel):
    """One version of an asset: where it is and whom it is for."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
                     AfterValidator(forbid_nul)]
    url: AnyHttpUrl
    funnel_stage: FunnelStage = FunnelStage.CONSIDERATION
    personas: list[Label] = Field(default_factory=list, max_length=50)
    industries: list[Label] = Field(default_factory=list, max_length=50)
    expires_on: date | None = None

    def fields(self) -> dict[str, object]:
        data = self.model_dump()
        data["url"] = str(self.url)
        return data


class CollateralIn(CollateralVersionIn):
    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    comment: Annotated[str, StringConstraints(max_length=5000), AfterValidator(forbid_nul)] | None = None


class CollateralFileIn(BaseModel):
    """The form fields sent with an uploaded file (multipart): lists are comma-separated."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
                     AfterValidator(forbid_nul)]
    funnel_stage: FunnelStage = FunnelStage.CONSIDERATION
    personas: list[Label] = Field(default_factory=list, max_length=50)
    industries: list[Label] = Field(default_factory=list, max_length=50)
    expires_on: date | None = None

    @classmethod
    def from_form(cls, form: dict[str, str]) -> CollateralFileIn:
        data: dict[str, object] = {k: v for k, v in form.items() if v != ""}
        for name in ("personas", "industries"):
            if name in data:
                data[name] = [part.strip() for part in str(data[name]).split(",") if part.strip()]
        return cls.model_validate(data)


class CollateralFileCreateIn(CollateralFileIn):
    key: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]

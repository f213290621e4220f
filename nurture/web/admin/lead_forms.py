"""The lead pages' forms: Flask-WTF gives each its CSRF token and its errors by field."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import DataRequired, Length


class ImportForm(FlaskForm):
    file = FileField("CSV file")
    skip_invalid = BooleanField("Import the valid rows and skip the invalid ones")


class EraseForm(FlaskForm):
    confirm = StringField("Type the lead's email address to confirm", validators=[
        DataRequired("Type the lead's email address."), Length(max=320)])


class SequenceForm(FlaskForm):
    """Enroll in, or remove from, one sequence (the choices are set by the view)."""

    sequence = SelectField("Sequence", coerce=str, validators=[
        DataRequired("Choose a sequence.")])

"""Email templates: one folder per email (`subject.txt`, `body.html`, `body.txt`) and a shared
`layout/`. Marketer-written, so they are always rendered in Jinja2's sandbox."""

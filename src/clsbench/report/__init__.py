"""report/ — what people and machines read: the record schemas that records read back are
checked against (`records`), terminal and Markdown tables (`tables`), self-contained HTML
pages rendered by Jinja2 with autoescape (`html`, `templates/`), SVG charts (`svg`).
May import: compile/, plan, accuracy/, runtime/, data/, model/, the root helpers."""

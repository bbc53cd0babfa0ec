"""Re-point the code quotes of docs/concepts.md at the lines where the quoted code now is.

Each quote in the guide is a fenced python block whose first line is ``# path:first-last``;
``tests/test_concepts.py`` fails when the lines there no longer match. When code only moved (lines added
above it), run ``python docs/update_quotes.py``: it finds each quoted block in its file (the match nearest
the old position) and rewrites the line numbers. A quote whose code changed is reported and left alone:
update its text by hand.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUOTE = re.compile(r"```python\n# ([\w/.]+):(\d+)-(\d+)\n(.*?)\n```", flags=re.S)


def relocate(match: re.Match, changed: list[str]) -> str:
    path, first, quoted = match.group(1), int(match.group(2)), match.group(4)
    lines, wanted = (ROOT / path).read_text().splitlines(), quoted.splitlines()
    hits = [i + 1 for i in range(len(lines) - len(wanted) + 1) if lines[i : i + len(wanted)] == wanted]
    if not hits:
        changed.append(f"{path}:{first}: the quoted code is no longer in the file; edit the quote")
        return match.group(0)
    start = min(hits, key=lambda line: abs(line - first))
    if start != first:
        changed.append(f"{path}: {first} -> {start}")
    return f"```python\n# {path}:{start}-{start + len(wanted) - 1}\n{quoted}\n```"


def main() -> int:
    doc = ROOT / "docs" / "concepts.md"
    changed: list[str] = []
    doc.write_text(QUOTE.sub(lambda match: relocate(match, changed), doc.read_text()))
    print("\n".join(changed) or "all quotes already point at their code")
    return 1 if any("edit the quote" in line for line in changed) else 0


if __name__ == "__main__":
    sys.exit(main())

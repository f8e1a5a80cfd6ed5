"""A small hand-written SQuAD-format file (official nested JSON) for QA tests."""

from __future__ import annotations

import json
from pathlib import Path

PARAGRAPHS = [
    (
        "France",
        "Paris is the capital and most populous city of France. The city stands on the river Seine.",
        [("What is the capital of France?", "Paris"), ("Which river flows through Paris?", "Seine")],
    ),
    (
        "Everest",
        "Mount Everest is the highest mountain above sea level. It lies in the Himalayas on the border of "
        "Nepal and China, and its summit was first reached in 1953.",
        [("In which mountain range is Mount Everest?", "the Himalayas"), ("When was the summit reached?", "1953")],
    ),
    (
        "Water",
        "Water boils at 100 degrees Celsius at sea level. At high altitude the boiling point is lower "
        "because the air pressure is lower.",
        [("At what temperature does water boil at sea level?", "100 degrees Celsius")],
    ),
]
IMPOSSIBLE = ("Who painted the Mona Lisa?", "France")


def write_squad_json(directory: Path, impossible: bool = False, name: str | None = None) -> Path:
    """Write the paragraphs as SQuAD JSON; `impossible` adds one unanswerable (v2.0) question."""
    data = []
    n = 0
    for title, context, qas in PARAGRAPHS:
        entries = []
        for question, answer in qas:
            start = context.index(answer)
            entries.append({"id": f"q{n}", "question": question, "answers": [{"text": answer, "answer_start": start}]})
            n += 1
        if impossible and title == IMPOSSIBLE[1]:
            entries.append({"id": "impossible", "question": IMPOSSIBLE[0], "answers": [], "is_impossible": True})
        data.append({"title": title, "paragraphs": [{"context": context, "qas": entries}]})
    path = Path(directory) / (name or f"squad_{'v2' if impossible else 'v1'}.json")
    path.write_text(json.dumps({"version": "v2.0" if impossible else "1.1", "data": data}))
    return path

"""How `choice` reads an option letter, against the cascade of MMLU-Pro's own evaluation scripts, on phrasings
written for the purpose (each with the letter it means, or None where it names no single option).

MMLU-Pro's cascade, as its `evaluate_from_*` scripts run it: the first "answer is (X)" / "answer is X", else the
last "Answer: X" (either case of "answer"), else the last standalone capital A-J anywhere in the text.

    python -m benchmarks.choice_extraction
"""

from __future__ import annotations

import re
from collections import Counter

from benchmarks.common import print_table
from laser_rl.verifiers import extract_choice

LETTERS = "ABCDEFGHJ"  # I is left out of the intended answers: it is the pronoun case's trap


def mmlu_pro_cascade(text: str) -> str | None:
    """MMLU-Pro's reading, options A-J."""
    first = re.search(r"answer is \(?([A-J])\)?", text)
    if first:
        return first[1]
    last_answer = re.search(r".*[aA]nswer:\s*([A-J])", text)
    if last_answer:
        return last_answer[1]
    last_letter = re.search(r"\b[A-J]\b(?!.*\b[A-J]\b)", text, re.DOTALL)
    return last_letter[0] if last_letter else None


def phrasings() -> list[tuple[str, str, str | None]]:
    """(kind, response, the letter it means or None), over every intended letter."""
    cases = []
    for index, x in enumerate(LETTERS):
        y = LETTERS[(index + 3) % len(LETTERS)]  # another option, discussed before the choice
        cases += [
            ("answer is (X)", f"Adding the two gives 12.\nThe answer is ({x}).", x),
            ("answer is (X)", f"So the answer is {x}.", x),
            ("Answer: X", f"Working it out step by step.\nAnswer: {x}", x),
            ("Answer: X", f"**Answer:** {x}", x),
            ("lone letter", f"Let me check each option.\n{x}", x),
            ("lone letter", f"Final choice:\n**({x})**", x),
            ("other words", f"Therefore, the correct option is {x}.", x),
            ("other words", f"After weighing them, I would choose {x}.", x),
            ("other words", f"The best match is option ({x}).", x),
            ("parenthesised", f"Only one fits the data: ({x}).", x),
            ("parenthesised", f"This rules out the rest, leaving ({x}) as the only consistent choice.", x),
            ("options discussed", f"Option {y} fails because the sign is wrong. So {x}.", x),
            (
                "options discussed",
                f"({y}) is too small and ({y}) was ruled out above. The answer is therefore {x}.",
                x,
            ),
            ("corrected", f"At first the answer is {y}. Wait, that misses a factor; the answer is {x}.", x),
            ("pronoun I", f"The answer must be {x}, I think.", x),
            ("pronoun I", f"It is {x}. I am fairly sure of it.", x),
            ("article A", f"The answer is {x}. A quick check confirms it.", x),
            ("letter in a word", f"The Answer is {x} because B-cells and T-cells differ.", x),
            ("several letters", f"Both {x} and {y} are correct.", None),
            ("several letters", f"The answer is {x} or {y}.", None),
            ("no option", "I cannot decide without more information.", None),
            ("no option", "A careful reading does not settle it.", None),
        ]
    return cases


def outcome(read: str | None, meant: str | None) -> str:
    if read == meant:
        return "right"
    return "no answer" if read is None else "wrong"


def comparison() -> dict[str, dict[str, Counter]]:
    """{kind: {"MMLU-Pro" / "laser-rl": Counter of right, wrong, no answer}}."""
    table: dict[str, dict[str, Counter]] = {}
    for kind, text, meant in phrasings():
        row = table.setdefault(kind, {"MMLU-Pro": Counter(), "laser-rl": Counter()})
        row["MMLU-Pro"][outcome(mmlu_pro_cascade(text), meant)] += 1
        row["laser-rl"][outcome(extract_choice(text), meant)] += 1
    return table


def main() -> None:
    table = comparison()
    rows = [
        [kind, sum(counts["MMLU-Pro"].values()),
         *(f"{counts[reader]['right']} / {counts[reader]['wrong']} / {counts[reader]['no answer']}"
           for reader in ("MMLU-Pro", "laser-rl"))]
        for kind, counts in table.items()
    ]  # fmt: skip
    print_table(
        f"Option letters read from {len(phrasings())} phrasings: right / wrong / no answer",
        ["kind", "responses", "MMLU-Pro's cascade", "laser-rl `choice`"],
        rows,
    )


if __name__ == "__main__":
    main()

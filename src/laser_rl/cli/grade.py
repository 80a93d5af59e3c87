"""`laser grade`: grade each response's last \\boxed{} answer against the record's `answer`.

Adds `pred_answers` (the last boxed answer, None if there is none) and `acc_list` (1.0 or 0.0,
math-verify equivalence) to each record, as the authors' eval_math.py does.
"""

from __future__ import annotations

import argparse

from tqdm import tqdm

from laser_rl.grading import MathGrader, extract_last_boxed
from laser_rl.jsonl import check_responses, read_jsonl, write_jsonl_atomic


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade", help="grade responses against the gold answers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("input", metavar="IN.jsonl", help="records with answer and responses")
    parser.add_argument("output", metavar="OUT.jsonl")


def run(args: argparse.Namespace) -> None:
    records = read_jsonl(args.input, {"answer": (str, int, float)}, check_responses)
    predictions = [[extract_last_boxed(response) for response in record["responses"]] for record in records]
    flat_predictions = [prediction for answers in predictions for prediction in answers]
    golds = [str(record["answer"]) for record, answers in zip(records, predictions, strict=True) for _ in answers]
    # Blocks large enough to keep every worker busy, small enough for a progress bar.
    block = 256
    with MathGrader() as grader, tqdm(total=len(golds), desc="grade", unit="answer") as progress:
        graded = []
        for start in range(0, len(golds), block):
            graded += grader.grade(flat_predictions[start : start + block], golds[start : start + block])
            progress.update(len(graded) - progress.n)
    accuracies = iter(graded)
    write_jsonl_atomic(
        args.output,
        (
            record | {"pred_answers": answers, "acc_list": [next(accuracies) for _ in answers]}
            for record, answers in zip(records, predictions, strict=True)
        ),
    )

"""Exercises with a grader: the learner writes each backward pass, npformer checks it.
docs: exercises.md

    npformer exercise list [--dir DIR]           the ladder, easiest first; what DIR already passes
    npformer exercise start NAME [--dir DIR]     DIR/NAME.py: the plain forward, backward to write
    npformer exercise check FILE [--train]       finite differences, edge cases, purity, hints;
                                                 --train: the learner's layer trains reverse

ladder.py lists the exercises and their cases, templates/ holds the files `start` writes,
solutions.py the reference solutions (the templates with npformer's own backward), checker.py
runs a check, hints.py knows the common wrong answers, train.py the side-by-side training.
"""

from npformer.exercises.checker import ExerciseError, check_file, load
from npformer.exercises.ladder import EXERCISES

__all__ = ["EXERCISES", "ExerciseError", "check_file", "load"]

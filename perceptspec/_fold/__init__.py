"""Pure folds over specs: shapes, parameter counts, summary, serialization. No torch."""

from perceptspec._fold._diff import Change, SpecDiff, diff
from perceptspec._fold._fingerprint import fingerprint
from perceptspec._fold._params import count_parameters
from perceptspec._fold._program import Eqn, Program, lower
from perceptspec._fold._render import render, to_dot
from perceptspec._fold._serialize import from_dict, from_yaml, to_dict, to_yaml
from perceptspec._fold._shapes import infer_shapes, trace
from perceptspec._fold._summary import summary

__all__ = ["Change", "Eqn", "Program", "SpecDiff", "count_parameters", "diff", "fingerprint", "from_dict", "from_yaml",
           "infer_shapes", "lower", "render", "summary", "to_dict", "to_dot", "to_yaml", "trace"]

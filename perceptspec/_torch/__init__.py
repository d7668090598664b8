"""The torch interpreter. Imported lazily: `import perceptspec` never imports torch."""

from perceptspec._torch._module import SpecModule, materialize, run_reference

__all__ = ["SpecModule", "materialize", "run_reference"]

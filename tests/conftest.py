"""Hypothesis profiles. `pytest --hypothesis-profile=triage` skips shrinking: a quick list of what fails (shrinking
many failing properties one after another can take many minutes); the default profile shrinks as usual."""

from hypothesis import Phase, settings

settings.register_profile("triage", phases=[Phase.explicit, Phase.reuse, Phase.generate])

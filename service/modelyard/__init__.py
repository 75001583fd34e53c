"""modelyard: routes each step of a coding agent's job to the model with the lowest cost per finished, correct job."""

__version__ = "0.1.0"

"""A simulated OpenAI-compatible provider for end-to-end tests and benchmarks (`modelyard simulate`)."""

from modelyard.simulate.models import Answer, Profile, Simulator, load_profiles, load_table
from modelyard.simulate.server import build_app, start

__all__ = ["Answer", "Profile", "Simulator", "build_app", "load_profiles", "load_table", "start"]

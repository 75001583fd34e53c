"""`ConfigError`: every problem in a config file, each naming the file, the field and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file: where (`path`, e.g. ``models[3].price.output_per_mtok``),
    what (`message`) and what to write instead (`fix`)."""

    path: str
    message: str
    fix: str

    def render(self, source: str) -> str:
        where = f"{source}: {self.path}" if self.path else source
        return f"{where}: {self.message} — {self.fix}"


class ConfigError(ValueError):
    """The config file is unreadable or invalid. `str(err)` has one line per problem."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(p.render(source) for p in self.problems))

    @property
    def lines(self) -> list[str]:
        return [p.render(self.source) for p in self.problems]

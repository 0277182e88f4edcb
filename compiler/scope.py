"""One scope for every name a generated module uses.

As Jinja's `idtracking` resolves every name through one symbol table, every identifier
kflowc writes comes from here: the runtime alias (`rt`), module-level functions and
state (`node_fetch`, `limiter_api`, `chain_load`), modules imported for generated code,
and the locals and extra parameters of pattern wrappers (`operations`, `chunk`,
`outcome`, `primary_output`). The user's own names (inputs, resources, connected names,
and every name their code binds or reads) are declared first, and nothing generated may
take one of them, so no workflow name can shadow a generated one or the reverse.

Preferred names are kept when free (`rt`, `operations`), so modules read as before.
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from collections.abc import Iterable

from kflow.pysource import Ident

# Public names every module defines (API of the module; never renamed).
MODULE_API = frozenset({
    "run", "run_many", "open_resources", "WORKFLOW", "NODES", "NODE_INFO", "REQUIRED_INPUTS",
    "RESOURCES", "SOURCE_MAP", "PROGRAM",
})
# Parameters and locals of run(), run_many() and chain functions (templates/runner.py.j2):
# module-level names they read must not be hidden by these.
RUNNER_LOCALS = frozenset({
    "inputs", "resources", "registry", "environ", "observer", "ctx", "opened", "owned",
    "inputs_list", "max_concurrency", "options",
})
RUNTIME_ALIASES = ("rt", "kflow_rt")


def mentions(code: str, name: str) -> bool:
    """Whether `name` occurs as a name token in `code` (True if `code` cannot be tokenized:
    when unsure, treat the name as taken)."""
    if name not in code:
        return False
    try:
        tokens = tokenize.generate_tokens(io.StringIO(code).readline)
        return any(t.type == tokenize.NAME and t.string == name for t in tokens)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return True


def runtime_alias(code_texts: Iterable[str], names: Iterable[str]) -> Ident:
    """The name a module imports kflow_runtime as: `rt`, unless the workflow uses it.

    Chosen before analysis (the transforms write it into node code, `rt.MISSING`), from
    the workflow's own names and a token scan of its code strings.
    """
    taken = set(names)
    texts = list(code_texts)
    for candidate in RUNTIME_ALIASES:
        if candidate not in taken and not any(mentions(t, candidate) for t in texts):
            return Ident(candidate)
    n = 2
    while True:
        candidate = f"kflow_rt_{n}"
        if candidate not in taken and not any(mentions(t, candidate) for t in texts):
            return Ident(candidate)
        n += 1


def _base(hint: str) -> str:
    base = re.sub(r"\W+", "_", hint, flags=re.ASCII).strip("_").lower()
    return base or "node"


class ModuleScope:
    """The module's top level: what is defined there, and what must never be."""

    def __init__(self, runtime: Ident, user_names: Iterable[str] = ()) -> None:
        self.runtime = runtime
        # What the module's top level binds (a local must not hide one of these)...
        self._defined = set(MODULE_API) | {runtime}
        # ...and every name nothing generated may take.
        self._taken = set(user_names) | self._defined | RUNNER_LOCALS
        # Modules generated code imports (name -> the name it is bound to).
        self.modules: dict[str, Ident] = {}

    def define(self, prefix: str, hint: str) -> Ident:
        """A new module-level name `<prefix>_<hint>`: readable, unique, never a keyword,
        never a user's name."""
        candidate = f"{prefix}_{_base(hint)}"
        if keyword.iskeyword(candidate) or not candidate.isidentifier():
            candidate = f"{prefix}_{len(self._taken)}"
        return self._claim(candidate)

    def _claim(self, candidate: str) -> Ident:
        name, n = candidate, 2
        while name in self._taken:
            name, n = f"{candidate}_{n}", n + 1
        self._taken.add(name)
        self._defined.add(name)
        return Ident(name)

    def module(self, name: str, *, shadowed_by: Iterable[str] = ()) -> Ident:
        """The name generated code uses for the stdlib module `name`, in a function whose
        parameters are `shadowed_by`: the module's own name, or, when a parameter takes
        it, an alias imported for generated code alone."""
        shadowed = name in set(shadowed_by)
        key = f"{name} as" if shadowed else name
        if key not in self.modules:
            self.modules[key] = self._claim(f"kflow_{name}") if shadowed else Ident(name)
            self._defined.add(self.modules[key])
        return self.modules[key]

    def imports(self) -> list[str]:
        """The import lines for modules generated code uses."""
        return [f"import {key.split()[0]}" if " " not in key
                else f"import {key.split()[0]} as {alias}" for key, alias in self.modules.items()]

    def function(self, params: Iterable[str] = ()) -> FunctionScope:
        return FunctionScope(self, params)


class FunctionScope:
    """Inside one generated function: its parameters, and the locals a template adds."""

    def __init__(self, module: ModuleScope, params: Iterable[str]) -> None:
        self.module = module
        self.params = list(params)
        self._taken = set(self.params)

    def local(self, preferred: str) -> Ident:
        """A local (or an extra parameter) named `preferred` when nothing in reach uses it."""
        taken = self._taken | self.module._defined
        name, n = preferred, 2
        while name in taken:
            name, n = f"{preferred}_{n}", n + 1
        self._taken.add(name)
        return Ident(name)

    def module_name(self, name: str) -> Ident:
        return self.module.module(name, shadowed_by=self._taken)

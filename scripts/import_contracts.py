"""An import-linter contract type: packages that may import only the stdlib and named packages.

import-linter's built-in ``forbidden`` contract names the packages a module must not import, so a
dependency added to the project later is allowed until someone remembers to list it. For
``shared_protocol`` (which the Blender extension ships with pyzmq alone) the rule is the other
way round: the standard library and zmq, nothing else. This contract states exactly that.
pyproject.toml registers it under ``[tool.importlinter] contract_types`` as ``stdlib_only``:

    [[tool.importlinter.contracts]]
    type = "stdlib_only"
    source_modules = ["shared_protocol"]
    allowed_external_packages = ["zmq"]

Imports between the project's own root packages are not this contract's business (a
``forbidden`` contract says which of those are allowed). It needs
``include_external_packages = true``: without it the graph holds no third-party imports to check.
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.helpers import module_expressions_to_modules


class StdlibOnlyContract(Contract):
    """The source modules (as packages) import only the stdlib and ``allowed_external_packages``.

    Configuration options:
        - source_modules: the modules (with their descendants) to check.
        - allowed_external_packages: top-level names of third-party packages they may import.
          (Optional.)
    """

    type_name = "stdlib_only"

    source_modules = fields.ListField(subfield=fields.ModuleExpressionField())
    allowed_external_packages = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        if str(self.session_options.get("include_external_packages")).lower() != "true":
            raise ValueError("the stdlib_only contract needs include_external_packages = true")
        own = set(self.session_options["root_packages"])
        allowed = set(sys.stdlib_module_names) | set(self.allowed_external_packages or ())
        sources = module_expressions_to_modules(graph, self.source_modules)  # type: ignore
        violations: list[dict[str, object]] = []
        for source in sorted(sources, key=lambda module: module.name):
            if source.name not in graph.modules:
                raise ValueError(f"Module '{source.name}' does not exist.")
            for importer in sorted({source.name} | graph.find_descendants(source.name)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    root = imported.split(".")[0]
                    if root in own or root in allowed:
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    violations.append({
                        "importer": importer,
                        "imported": imported,
                        "line_numbers": tuple(d["line_number"] for d in details),
                    })
            output.verbose_print(verbose, f"Checked {source.name}.")
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(sorted(self.allowed_external_packages or ())) or "nothing"
        output.print_error(f"Only the standard library and {allowed} may be imported:")
        output.new_line()
        for violation in check.metadata["violations"]:
            lines = ", ".join(f"l.{n}" for n in violation["line_numbers"])
            output.print_error(f"-   {violation['importer']} -> {violation['imported']} ({lines})",
                               bold=False)
        output.new_line()

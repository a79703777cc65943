"""`wfe schema`: the JSON Schema of the format, generated from the models."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command("schema")
def command() -> None:
    """Print the JSON Schema of workflows.yaml (for editors' YAML plugins)."""
    click.echo(json.dumps(document_schema(), indent=2))


def document_schema() -> dict[str, Any]:
    from executors.base import registry
    from wfe_yaml.models import Document

    schema = Document.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "wfe-yaml workflows file"
    schema.setdefault("patternProperties", {})["^_"] = {"description": "ignored: anchors home"}
    schema["additionalProperties"] = False
    definitions = schema.setdefault("$defs", {})
    rules = []
    for name in registry.names():
        model = registry.config_model(name)
        config_schema = model.model_json_schema(ref_template="#/$defs/{model}")
        definitions.update(config_schema.pop("$defs", {}))
        definitions[model.__name__] = config_schema
        rules.append(
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {"properties": {"config": {"$ref": f"#/$defs/{model.__name__}"}}},
            }
        )
    step = definitions["Step"]
    step["allOf"] = rules
    step["properties"]["type"] = {"anyOf": [{"enum": registry.names()}, {"type": "null"}]}
    for workflow_like in ("Workflow", "Step"):
        definitions[workflow_like]["patternProperties"] = {"^_": {}}
    return schema

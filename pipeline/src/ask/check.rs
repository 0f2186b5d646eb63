//! Holds SQL written for a question (by the LLM, or the local parser) to what a question may do:
//! one SELECT over [`super::views::VIEWS`] and their columns, no table functions, no settings,
//! no output clauses; every view narrowed to the caller's tenants; at most `max_rows` rows. The
//! SQL is parsed (sqlparser's ClickHouse dialect), checked and rewritten on the syntax tree, so
//! that a view named inside a subquery, a join or a CTE is narrowed as well. What passes still
//! runs with `readonly=1` and a time limit: the check is the first wall, not the only one.

use std::{collections::BTreeSet, ops::ControlFlow};

use sqlparser::{
    ast::{Expr, InTarget, Query, SetExpr, Statement, TableFactor, VisitMut, VisitorMut},
    dialect::ClickHouseDialect,
    parser::Parser,
};

use super::views;

/// Functions that read or write outside the views (dictionaries, files, other servers) or
/// reveal the server: refused anywhere in a question's SQL.
const DENIED_FUNCTIONS: &[&str] = &[
    "dictget",
    "file",
    "url",
    "remote",
    "remotesecure",
    "cluster",
    "clusterallreplicas",
    "s3",
    "s3cluster",
    "hdfs",
    "mysql",
    "postgresql",
    "jdbc",
    "odbc",
    "executable",
    "input",
    "merge",
    "currentuser",
    "getsetting",
    "getmacro",
    "hostname",
    "fqdn",
    "sleep",
    "sleepeachrow",
    "throwif",
    "getserverport",
];

/// `sql` checked and rewritten, or why it is refused.
pub fn checked(sql: &str, tenants: Option<&[String]>, max_rows: u64) -> Result<String, String> {
    let sql = sql.trim().trim_end_matches(';');
    // The parser reads `\` in a literal as an escape and prints it back unescaped: what it checked
    // and what ClickHouse would run would differ. Values that need one are written as
    // `unhex(...)` by [`quote`]; SQL from anywhere else has none.
    if sql.contains('\\') {
        return Err("a backslash is not allowed (write such values as unhex('...'))".into());
    }
    let mut statements =
        Parser::parse_sql(&ClickHouseDialect {}, sql).map_err(|e| format!("not SQL that parses: {e}"))?;
    if statements.len() != 1 {
        return Err(format!("{} statements; one SELECT is allowed", statements.len()));
    }
    let Statement::Query(query) = &mut statements[0] else {
        return Err("not a SELECT".into());
    };
    let mut names = Names::default();
    names.collect(query);
    let mut narrow = Narrow { tenants, names: &names, problem: None };
    let _ = query.visit(&mut narrow);
    if let Some(problem) = narrow.problem {
        return Err(problem);
    }
    cap(query, max_rows)
}

/// `['a', 'b']`, each string a ClickHouse literal.
pub fn string_array(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A ClickHouse string expression of any text: a literal, or `unhex('...')` when the text holds
/// a quote or a backslash, which no two readers of SQL escape alike.
pub fn quote(text: &str) -> String {
    if text.contains(['\'', '\\']) {
        let hex: String = text.bytes().map(|b| format!("{b:02X}")).collect();
        format!("unhex('{hex}')")
    } else {
        format!("'{text}'")
    }
}

/// Names the SQL itself defines (aliases of tables and columns, lambda parameters): these may be
/// referred to besides the views' columns.
#[derive(Default)]
struct Names {
    aliases: BTreeSet<String>,
}

impl Names {
    fn collect(&mut self, query: &mut Query) {
        let _ = query.visit(self);
    }

    fn defines(&self, name: &str) -> bool {
        self.aliases.contains(&name.to_ascii_lowercase())
    }
}

impl VisitorMut for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_ref() {
            for item in &select.projection {
                if let sqlparser::ast::SelectItem::ExprWithAlias { alias, .. } = item {
                    self.aliases.insert(alias.value.to_ascii_lowercase());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let alias = match factor {
            TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => alias.as_ref(),
            _ => None,
        };
        if let Some(alias) = alias {
            self.aliases.insert(alias.name.value.to_ascii_lowercase());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Lambda(lambda) = expr {
            self.aliases.extend(lambda.params.iter().map(|p| p.name.value.to_ascii_lowercase()));
        }
        ControlFlow::Continue(())
    }
}

/// Refuses what is not allowed and puts each view behind its tenant condition.
struct Narrow<'a> {
    tenants: Option<&'a [String]>,
    names: &'a Names,
    problem: Option<String>,
}

impl Narrow<'_> {
    fn refuse(&mut self, problem: String) -> ControlFlow<()> {
        self.problem = Some(problem);
        ControlFlow::Break(())
    }

    fn known_column(&self, name: &str) -> bool {
        self.names.defines(name)
            || views::VIEWS.iter().any(|(_, columns)| columns.iter().any(|c| c.eq_ignore_ascii_case(name)))
    }
}

impl VisitorMut for Narrow<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        // A CTE could take the name of a table that is not a view (`WITH alerts AS ...` read
        // before it is defined), so there are none: subqueries say the same.
        if query.with.is_some() {
            return self.refuse("WITH is not allowed; use a subquery".into());
        }
        if query.settings.is_some() || query.format_clause.is_some() || query.for_clause.is_some() {
            return self.refuse("SETTINGS, FORMAT and FOR clauses are not allowed".into());
        }
        if let SetExpr::Select(select) = query.body.as_ref() {
            if select.into.is_some() {
                return self.refuse("SELECT ... INTO is not allowed".into());
            }
        }
        if !matches!(query.body.as_ref(), SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::SetOperation { .. }) {
            return self.refuse("only SELECT queries are allowed".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } => {
                self.refuse(format!("table function `{name}` is not allowed"))
            }
            _ => ControlFlow::Continue(()),
        }
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let [part] = name.0.as_slice() else {
                    return self.refuse(format!("`{name}`: name views without a database"));
                };
                let Some(view) = part.as_ident().map(|i| i.value.clone()) else {
                    return self.refuse(format!("`{name}` is not a view"));
                };
                if views::columns(&view).is_none() {
                    let allowed: Vec<&str> = views::VIEWS.iter().map(|(v, _)| *v).collect();
                    return self
                        .refuse(format!("`{view}` is not one of the views questions read ({})", allowed.join(", ")));
                }
                let Some(tenants) = self.tenants else {
                    return ControlFlow::Continue(());
                };
                let alias = alias.as_ref().map_or(view.clone(), |a| a.name.value.clone());
                if !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return self.refuse(format!("`{alias}`: name tables with letters, digits and _"));
                }
                let narrowed = format!(
                    "SELECT 1 FROM (SELECT * FROM {view} WHERE has({}, tenant)) AS {alias}",
                    string_array(tenants)
                );
                match only_table_factor(&narrowed) {
                    Some(narrowed) => {
                        *factor = narrowed;
                        ControlFlow::Continue(())
                    }
                    None => self.refuse(format!("`{view}` could not be narrowed to the tenants")),
                }
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            other => self.refuse(format!("`{other}` is not allowed in FROM")),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) if !self.known_column(&ident.value) => {
                self.refuse(format!("`{}` is not a column of the views", ident.value))
            }
            Expr::CompoundIdentifier(parts) if parts.len() > 2 => {
                self.refuse(format!("`{expr}`: name columns as view.column at most"))
            }
            Expr::CompoundIdentifier(parts) => match parts.last() {
                Some(last) if !self.known_column(&last.value) => {
                    self.refuse(format!("`{}` is not a column of the views", last.value))
                }
                _ => ControlFlow::Continue(()),
            },
            // `x IN incidents` reads a table: only lists of values and subqueries are allowed.
            Expr::In { target: InTarget::Table { .. } | InTarget::Unnest(_), .. } => {
                self.refuse("IN a table is not allowed; use IN (SELECT ...)".into())
            }
            Expr::In { target: InTarget::List(list), .. }
                if list.iter().any(|e| matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))) =>
            {
                self.refuse("IN lists hold values, not names".into())
            }
            Expr::Function(function) => {
                let last = function.name.0.last().and_then(|part| part.as_ident()).map(|i| i.value.clone());
                let name = last.unwrap_or_default().to_ascii_lowercase();
                if DENIED_FUNCTIONS.iter().any(|denied| name.starts_with(denied)) {
                    self.refuse(format!("function `{name}` is not allowed"))
                } else {
                    ControlFlow::Continue(())
                }
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

/// The FROM of a `SELECT 1 FROM (...) AS alias` written by this module.
fn only_table_factor(sql: &str) -> Option<TableFactor> {
    let mut statements = Parser::parse_sql(&ClickHouseDialect {}, sql).ok()?;
    let Some(Statement::Query(query)) = statements.pop() else { return None };
    let SetExpr::Select(select) = *query.body else { return None };
    select.from.into_iter().next().map(|from| from.relation)
}

/// The query with at most `max_rows` rows: its own LIMIT when that is a number no larger,
/// otherwise wrapped in a SELECT that limits it.
fn cap(query: &Query, max_rows: u64) -> Result<String, String> {
    // A LIMIT after a UNION limits its last SELECT only: such a query is always wrapped.
    let single = !matches!(query.body.as_ref(), SetExpr::SetOperation { .. });
    let own = match &query.limit_clause {
        Some(sqlparser::ast::LimitClause::LimitOffset { limit: Some(limit), limit_by, .. }) if limit_by.is_empty() => {
            limit.to_string().parse::<u64>().ok()
        }
        _ => None,
    };
    Ok(match own {
        Some(n) if n <= max_rows && single => query.to_string(),
        _ => format!("SELECT * FROM ({query}) LIMIT {max_rows}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants() -> Vec<String> {
        vec!["acme".into()]
    }

    #[test]
    fn a_select_over_the_views_is_narrowed_to_the_tenants_and_capped() {
        let sql = checked("SELECT service, count() AS n FROM incident_facts GROUP BY service", Some(&tenants()), 100)
            .unwrap();
        assert_eq!(
            sql,
            "SELECT * FROM (SELECT service, count() AS n FROM (SELECT * FROM incident_facts WHERE has(['acme'], \
             tenant)) AS incident_facts GROUP BY service) LIMIT 100"
        );
        let own = checked("SELECT incident_id FROM incident_facts f ORDER BY first_seen DESC LIMIT 5", None, 100);
        assert_eq!(own.unwrap(), "SELECT incident_id FROM incident_facts f ORDER BY first_seen DESC LIMIT 5");
    }

    #[test]
    fn views_inside_subqueries_and_joins_are_narrowed_too() {
        let sql = "SELECT count() FROM incident_facts AS i \
                   JOIN (SELECT incident_id FROM actions WHERE kind = 'acknowledge') AS acks ON acks.incident_id = i.incident_id \
                   WHERE i.service IN (SELECT service FROM incident_facts)";
        let narrowed = checked(sql, Some(&tenants()), 10).unwrap();
        assert_eq!(narrowed.matches("has(['acme'], tenant)").count(), 3, "{narrowed}");
    }

    #[test]
    fn writes_other_tables_table_functions_and_settings_are_refused() {
        for (sql, why) in [
            ("DROP TABLE incidents", "not a SELECT"),
            ("SELECT 1; DROP TABLE incidents", "2 statements"),
            ("INSERT INTO actions SELECT * FROM actions", "not a SELECT"),
            ("SELECT * FROM incidents", "`incidents` is not one of the views"),
            ("SELECT * FROM system.tables", "name views without a database"),
            ("SELECT * FROM url('http://x', CSV)", "table function"),
            ("SELECT count() FROM incident_facts SETTINGS readonly = 0", "SETTINGS"),
            ("SELECT password FROM incident_facts", "`password` is not a column"),
            ("SELECT dictGet('d', 'x', 1) FROM incident_facts", "function `dictget`"),
            ("WITH alerts AS (SELECT 1) SELECT * FROM incident_facts", "WITH is not allowed"),
            ("SELECT count() FROM incident_facts; ", ""),
        ] {
            match checked(sql, Some(&tenants()), 10) {
                Ok(_) => assert!(why.is_empty(), "{sql} passed"),
                Err(e) => assert!(!why.is_empty() && e.contains(why), "{sql}: {e}"),
            }
        }
    }

    #[test]
    fn literals_are_quoted_whatever_they_hold() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote(r"it's \"), "unhex('6974277320 5C')".replace(' ', ""));
        assert_eq!(string_array(&["a".into(), "b'".into()]), "['a', unhex('6227')]");
        // Checked and run alike: what the value holds cannot end the string early.
        let sql = format!("SELECT count() FROM incident_facts WHERE service = {}", quote(r"x\' OR 1 = 1 --"));
        assert!(checked(&sql, Some(&tenants()), 10).unwrap().contains("service = unhex("));
    }

    #[test]
    fn backslashes_in_table_and_other_ways_out_are_refused() {
        for (sql, why) in [
            (r"SELECT '\\' AS x, ' AS x, tenant FROM incidents -- ' AS y FROM incident_facts", "backslash"),
            ("SELECT count() FROM incident_facts WHERE tenant IN incidents", "IN "),
            ("SELECT count() FROM incident_facts WHERE 0 IN (system.one)", "IN lists hold values"),
            ("SELECT a.b.c FROM incident_facts", "view.column at most"),
            (r#"SELECT "dictGet"('d', 'x', 1) FROM incident_facts"#, "function `dictget`"),
            ("SELECT count() FROM incident_facts AS `x y`", "letters, digits and _"),
        ] {
            let refused = checked(sql, Some(&tenants()), 10).unwrap_err();
            assert!(refused.contains(why), "{sql}: {refused}");
        }
        let union = checked("SELECT 1 AS n FROM incident_facts UNION ALL SELECT 2 AS n FROM actions LIMIT 5", None, 10);
        assert!(union.unwrap().starts_with("SELECT * FROM ("), "a UNION is wrapped");
    }
}

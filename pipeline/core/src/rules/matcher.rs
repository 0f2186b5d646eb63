//! Alertmanager label matchers: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.
//! Regular expressions are anchored at both ends, as in Alertmanager and Prometheus.

use std::{collections::BTreeMap, fmt};

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: Op,
    value: String,
    regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a matcher such as team=\"dba\", env!=\"dev\" or service=~\"pg.*\"");
        let op_at = text.find(['=', '!']).ok_or_else(bad)?;
        let name = text[..op_at].trim();
        let rest = &text[op_at..];
        let (op, rest) = [("=~", Op::Regex), ("!~", Op::NotRegex), ("!=", Op::NotEqual), ("=", Op::Equal)]
            .into_iter()
            .find_map(|(token, op)| rest.strip_prefix(token).map(|r| (op, r)))
            .ok_or_else(bad)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad());
        }
        let value = rest.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        Self::new(name, op, value).map_err(|e| format!("`{text}`: {e}"))
    }

    /// `name=~"pattern"`: the whole value matches the regular expression.
    pub fn regex(name: &str, pattern: &str) -> Result<Self, String> {
        Self::new(name, Op::Regex, pattern)
    }

    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Self {
        Self::new(name, Op::Equal, value).expect("equality needs no regex")
    }

    fn new(name: &str, op: Op, value: &str) -> Result<Self, String> {
        let regex = match op {
            Op::Regex | Op::NotRegex => Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| e.to_string())?),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Self { name: name.to_string(), op, value: value.to_string(), regex })
    }

    /// A missing label matches as the empty string, as in Alertmanager.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match (&self.op, &self.regex) {
            (Op::Equal, _) => value == self.value,
            (Op::NotEqual, _) => value != self.value,
            (Op::Regex, Some(re)) => re.is_match(value),
            (Op::NotRegex, Some(re)) => !re.is_match(value),
            (Op::Regex | Op::NotRegex, None) => unreachable!("regex matchers are built with their regex"),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_four_operators() {
        let l = labels(&[("team", "dba"), ("service", "postgres")]);
        assert!(Matcher::parse("team=\"dba\"").unwrap().matches(&l));
        assert!(!Matcher::parse("team!=\"dba\"").unwrap().matches(&l));
        assert!(Matcher::parse("service=~\"post.*\"").unwrap().matches(&l));
        assert!(!Matcher::parse("service=~\"post\"").unwrap().matches(&l), "regexes are anchored");
        assert!(Matcher::parse("service!~\"mysql|maria\"").unwrap().matches(&l));
        assert!(Matcher::parse("env=\"\"").unwrap().matches(&l), "missing label is empty");
    }

    #[test]
    fn bad_matchers_say_why() {
        assert!(Matcher::parse("team").is_err());
        assert!(Matcher::parse("=\"x\"").is_err());
        assert!(Matcher::parse("svc=~\"(\"").unwrap_err().contains("svc"));
    }
}

//! Alertmanager label matchers: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`,
//! several to a string separated by commas, optionally in braces (`{team="dba", env="prod"}`), as
//! Alertmanager's `matchers:` accepts them. Quoted values take Go's escapes (`\"`, `\\`, `\n`...);
//! unquoted values run to the next comma or brace. Regular expressions are anchored at both
//! ends and, as in Go, `\d`, `\w`, `\s` and `\b` are ASCII.

use std::{collections::BTreeMap, fmt};

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: Op,
    value: String,
    regex: Option<Regex>,
}

/// In Alertmanager's order of match types, which sorts matchers of equal name and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl Matcher {
    /// Exactly one matcher; a string that holds several is an error naming them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut all = Self::parse_list(text)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(format!("`{text}` holds {n} matchers where one is expected")),
        }
    }

    /// Every matcher of a string such as `{team="dba", env=~"prod|staging"}`.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let bad =
            |why: &str| format!("`{text}`: {why} (matchers look like team=\"dba\", env!=\"dev\" or service=~\"pg.*\")");
        let trimmed = text.trim();
        let inner = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
            (Some(rest), true) => &rest[..rest.len() - 1],
            (Some(_), false) => return Err(bad("an opening brace without its closing brace")),
            (None, _) if trimmed.ends_with('}') => return Err(bad("a closing brace without its opening brace")),
            (None, _) => trimmed,
        };
        let mut chars = inner.chars().peekable();
        let mut out = Vec::new();
        loop {
            skip_space(&mut chars);
            if chars.peek().is_none() {
                break;
            }
            let name = name(&mut chars).map_err(|e| bad(&e))?;
            skip_space(&mut chars);
            let op = match (chars.next(), chars.peek()) {
                (Some('='), Some('~')) => Op::Regex,
                (Some('!'), Some('=')) => Op::NotEqual,
                (Some('!'), Some('~')) => Op::NotRegex,
                (Some('='), _) => Op::Equal,
                _ => return Err(bad(&format!("no operator (=, !=, =~, !~) after `{name}`"))),
            };
            if op != Op::Equal {
                chars.next();
            }
            skip_space(&mut chars);
            let value = value(&mut chars).map_err(|e| bad(&e))?;
            out.push(Self::new(&name, op, &value).map_err(|e| format!("`{text}`: {e}"))?);
            skip_space(&mut chars);
            match chars.next() {
                None => break,
                Some(',') => continue,
                Some(c) => {
                    return Err(bad(&format!("`{c}` after the value of `{name}`, where a comma or the end belongs")))
                }
            }
        }
        if out.is_empty() && !trimmed.starts_with('{') {
            return Err(bad("no matcher"));
        }
        Ok(out)
    }

    /// `name=~"pattern"`: the whole value matches the regular expression.
    pub fn regex(name: &str, pattern: &str) -> Result<Self, String> {
        Self::new(name, Op::Regex, pattern)
    }

    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Self {
        Self::new(name, Op::Equal, value).expect("equality needs no regex")
    }

    /// A matcher as Alertmanager's API writes one (a silence's): `isRegex`, and `isEqual` false
    /// for the negated operators.
    pub fn from_parts(name: &str, value: &str, is_regex: bool, is_equal: bool) -> Result<Self, String> {
        let op = match (is_regex, is_equal) {
            (false, true) => Op::Equal,
            (false, false) => Op::NotEqual,
            (true, true) => Op::Regex,
            (true, false) => Op::NotRegex,
        };
        Self::new(name, op, value)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// `=~` or `!~`.
    pub fn is_regex(&self) -> bool {
        matches!(self.op, Op::Regex | Op::NotRegex)
    }

    /// `=` or `=~`.
    pub fn is_equal(&self) -> bool {
        matches!(self.op, Op::Equal | Op::Regex)
    }

    fn new(name: &str, op: Op, value: &str) -> Result<Self, String> {
        let regex = match op {
            Op::Regex | Op::NotRegex => Some(
                Regex::new(&format!("^(?:{})$", go_classes(value)))
                    .map_err(|e| format!("`{name}`: not a regular expression: {e}"))?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Self { name: name.to_string(), op, value: value.to_string(), regex })
    }

    /// A missing label matches as the empty string, as in Alertmanager.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        let value = labels.label(&self.name).unwrap_or("");
        match (&self.op, &self.regex) {
            (Op::Equal, _) => value == self.value,
            (Op::NotEqual, _) => value != self.value,
            (Op::Regex, Some(re)) => re.is_match(value),
            (Op::NotRegex, Some(re)) => !re.is_match(value),
            (Op::Regex | Op::NotRegex, None) => unreachable!("regex matchers are built with their regex"),
        }
    }
}

/// What a matcher reads: an alert's labels, as a map or as a group keeps them (packed), so that
/// asking about mutes at a flush unpacks nothing.
pub trait Labels {
    fn label(&self, name: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Whether `name` is a Prometheus label name, `[a-zA-Z_][a-zA-Z0-9_]*`, as `group_by`, `equal`
/// and the labels of `quench rules test` must be.
pub fn is_label_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_space(chars: &mut Chars) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

/// A label name: Prometheus's `[a-zA-Z_][a-zA-Z0-9_]*` (and `:`, which Alertmanager's classic
/// parser takes), or any text in double quotes.
fn name(chars: &mut Chars) -> Result<String, String> {
    if chars.peek() == Some(&'"') {
        return quoted(chars);
    }
    let mut name = String::new();
    while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':') {
        name.push(c);
    }
    match name.chars().next() {
        None => Err("a matcher without a label name".into()),
        Some(first) if first.is_ascii_digit() => Err(format!("label name `{name}` starts with a digit")),
        Some(_) => Ok(name),
    }
}

/// A value: quoted (with Go's escapes), or everything up to the next comma or brace, trimmed.
fn value(chars: &mut Chars) -> Result<String, String> {
    if chars.peek() == Some(&'"') {
        return quoted(chars);
    }
    let mut value = String::new();
    while let Some(c) = chars.next_if(|c| !matches!(c, ',' | '{' | '}' | '"')) {
        value.push(c);
    }
    if chars.peek() == Some(&'"') {
        return Err(format!("a quote inside the unquoted value `{value}`"));
    }
    Ok(value.trim_end().to_string())
}

/// A double-quoted string, its escapes resolved as Go's `strconv.Unquote` does.
fn quoted(chars: &mut Chars) -> Result<String, String> {
    chars.next();
    let mut out = String::new();
    loop {
        match chars.next() {
            None => return Err(format!("the quoted text `\"{out}` is not closed")),
            Some('"') => return Ok(out),
            Some('\\') => {
                let escaped = match chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some(c @ ('"' | '\\' | '\'')) => c,
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("`\\u{hex}` is not a character"))?
                    }
                    Some(c) => return Err(format!("`\\{c}` is not an escape in a quoted value (write `\\\\{c}`)")),
                    None => return Err("a quoted value ends in a backslash".into()),
                };
                out.push(escaped);
            }
            Some(c) => out.push(c),
        }
    }
}

/// Go's regular expressions are Unicode-aware except for the Perl classes `\d \w \s \b` (and
/// their negations), which are ASCII; Rust's are Unicode. Marks each ASCII-only so that a
/// pattern means the same as in Alertmanager.
fn go_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(class @ ('d' | 'D' | 'w' | 'W' | 's' | 'S')) if in_class => out.push_str(match class {
                    'd' => "0-9",
                    'w' => "0-9A-Za-z_",
                    's' => "\\t\\n\\f\\r ",
                    // Negated classes inside a class have no ASCII spelling; Rust's
                    // `[[:^digit:]]` is the ASCII complement.
                    'D' => "[:^digit:]",
                    'W' => "[:^word:]",
                    _ => "[:^space:]",
                }),
                Some(class @ ('d' | 'D' | 'w' | 'W' | 's' | 'S' | 'b' | 'B')) => {
                    out.push_str(&format!("(?-u:\\{class})"));
                }
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal member, not the end.
                if let Some(next) = chars.clone().next() {
                    if next == '^' {
                        out.push(chars.next().expect("peeked"));
                    }
                }
                if chars.clone().next() == Some(']') {
                    out.push(chars.next().expect("peeked"));
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

impl Matcher {
    /// Alertmanager's order of matchers: by name, then value, then match type.
    pub fn cmp_alertmanager(&self, other: &Self) -> std::cmp::Ordering {
        (&self.name, &self.value, self.op).cmp(&(&other.name, &other.value, other.op))
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
        assert!(Matcher::parse("team = dba").unwrap().matches(&l), "unquoted values, spaces around");
    }

    #[test]
    fn several_matchers_to_a_string_with_or_without_braces() {
        let l = labels(&[("team", "dba"), ("env", "prod")]);
        for text in [r#"team="dba",env="prod""#, r#"{team="dba", env="prod"}"#, "{ team=dba , env=~pro.* }"] {
            let all = Matcher::parse_list(text).unwrap();
            assert_eq!(all.len(), 2, "{text}");
            assert!(all.iter().all(|m| m.matches(&l)), "{text}");
        }
        assert!(Matcher::parse_list("{}").unwrap().is_empty(), "empty braces match everything");
        assert!(Matcher::parse(r#"team="dba",env="prod""#).unwrap_err().contains("2 matchers"));
    }

    #[test]
    fn quoted_values_take_gos_escapes() {
        let dotted = Matcher::parse(r#"inst=~"host\\.example""#).unwrap();
        assert!(dotted.matches(&labels(&[("inst", "host.example")])));
        assert!(!dotted.matches(&labels(&[("inst", "hostXexample")])), "an escaped dot is a literal dot");
        let quote = Matcher::parse(r#"msg="say \"hi\"""#).unwrap();
        assert!(quote.matches(&labels(&[("msg", "say \"hi\"")])));
        assert!(
            Matcher::parse(r#"a="x,y",b="}""#).is_err(),
            "a brace in a quoted value is text, but one matcher is expected"
        );
        assert_eq!(Matcher::parse_list(r#"a="x,y",b="}""#).unwrap().len(), 2);
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let digits = Matcher::parse(r#"code=~"\\d+""#).unwrap();
        assert!(digits.matches(&labels(&[("code", "503")])));
        assert!(!digits.matches(&labels(&[("code", "٥٠٣")])), "Arabic-Indic digits are not \\d in Go");
        let word = Matcher::parse(r#"x=~"[\\w-]+""#).unwrap();
        assert!(word.matches(&labels(&[("x", "db-1_a")])));
        assert!(!word.matches(&labels(&[("x", "dé")])), "é is not \\w in Go");
        assert!(Matcher::parse(r#"x=~".+""#).unwrap().matches(&labels(&[("x", "dé")])), ". still takes any character");
    }

    #[test]
    fn bad_matchers_say_why() {
        assert!(Matcher::parse("team").unwrap_err().contains("operator"));
        assert!(Matcher::parse("=\"x\"").unwrap_err().contains("label name"));
        assert!(Matcher::parse("svc=~\"(\"").unwrap_err().contains("svc"));
        assert!(Matcher::parse("foo=\"bar").unwrap_err().contains("not closed"));
        assert!(Matcher::parse(r#"team="dba",env="prod"#).is_err());
        assert!(Matcher::parse_list("{team=\"dba\"").unwrap_err().contains("brace"));
        assert!(Matcher::parse(r#"a="\q""#).unwrap_err().contains("escape"));
        assert!(Matcher::parse(r#"team="dba" env="prod""#).unwrap_err().contains("comma"));
    }
}

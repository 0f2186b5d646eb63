//! The technology catalog: which category the software an alert is about belongs to.
//!
//! Labelled examples cannot teach the family of a product that none of them mentions; a broad list
//! of technologies can. Quench ships `catalog.toml` (several hundred entries) and users add files
//! of the same shape. Matching is by whole words over [`text::searchable`] text with one
//! Aho-Corasick automaton, so a subject costs one pass per field whatever the catalog's size.

use std::{collections::HashMap, path::Path};

use aho_corasick::AhoCorasick;
use serde::Deserialize;

use crate::text;

/// The catalog that ships with Quench.
pub const BUILT_IN: &str = include_str!("../catalog.toml");

/// Generic words of a category count this much less than a product's name.
const HINT_WEIGHT: f32 = 0.25;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    category: Vec<CategoryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryEntry {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    hints: Vec<String>,
    /// `"Name"` or `"Name: keyword, keyword"`.
    #[serde(default)]
    technologies: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Category {
    pub name: String,
    pub description: String,
}

/// A technology and its category.
#[derive(Debug, Clone)]
pub struct Technology {
    pub name: String,
    pub category: usize,
    /// Its name and keywords as [`text::terms`].
    keywords: Vec<String>,
}

/// A generic word of a category ("queue", "replication").
#[derive(Debug, Clone)]
struct Hint {
    words: String,
    category: usize,
}

/// A keyword pattern: a technology's (weight 1) or a hint's (weight [`HINT_WEIGHT`]).
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Technology(usize),
    Hint(usize),
}

pub struct Catalog {
    categories: Vec<Category>,
    technologies: Vec<Technology>,
    hints: Vec<Hint>,
    patterns: Vec<Pattern>,
    automaton: AhoCorasick,
}

/// Entries left out of matching: how `quench eval` measures products no catalog lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mask {
    technologies: Vec<bool>,
    hints: Vec<bool>,
}

impl Mask {
    /// Entries masked by either.
    pub fn or(&self, other: &Mask) -> Mask {
        fn either(a: &[bool], b: &[bool]) -> Vec<bool> {
            (0..a.len().max(b.len()))
                .map(|i| a.get(i).copied().unwrap_or(false) || b.get(i).copied().unwrap_or(false))
                .collect()
        }
        Mask { technologies: either(&self.technologies, &other.technologies), hints: either(&self.hints, &other.hints) }
    }

    pub fn technology(&self, id: usize) -> bool {
        self.technologies.get(id).copied().unwrap_or(false)
    }

    fn hint(&self, id: usize) -> bool {
        self.hints.get(id).copied().unwrap_or(false)
    }

    fn pattern(&self, pattern: Pattern) -> bool {
        match pattern {
            Pattern::Technology(id) => self.technology(id),
            Pattern::Hint(id) => self.hint(id),
        }
    }
}

/// What the catalog found in a subject's fields.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Score per category index from products' names and keywords; only categories with
    /// evidence are present.
    pub products: HashMap<usize, f32>,
    /// Score per category index from the categories' generic words.
    pub hints: HashMap<usize, f32>,
    /// The technology with the most weight, if any matched.
    pub technology: Option<usize>,
}

impl Catalog {
    /// The built-in catalog extended by `extra` files: a category named again gains entries, a new
    /// name adds a category.
    pub fn load(extra: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        let mut texts = vec![("built-in catalog".to_string(), BUILT_IN.to_string())];
        for path in extra {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read catalog {}: {e}", path.display()))?;
            texts.push((path.display().to_string(), text));
        }
        Self::parse(&texts)
    }

    /// `texts` are (origin, TOML) pairs, later ones extending earlier ones.
    pub fn parse(texts: &[(String, String)]) -> anyhow::Result<Self> {
        let mut categories: Vec<Category> = Vec::new();
        let mut technologies = Vec::new();
        let mut hints = Vec::new();
        let mut keywords: Vec<(String, Pattern)> = Vec::new();
        for (origin, text) in texts {
            let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
            for entry in file.category {
                let index = match categories.iter().position(|c| c.name == entry.name) {
                    Some(index) => index,
                    None => {
                        categories.push(Category { name: entry.name.clone(), description: String::new() });
                        categories.len() - 1
                    }
                };
                if !entry.description.is_empty() {
                    categories[index].description = entry.description;
                }
                for hint in &entry.hints {
                    keywords.push((text::terms(hint), Pattern::Hint(hints.len())));
                    hints.push(Hint { words: text::terms(hint), category: index });
                }
                for line in entry.technologies {
                    let (name, rest) = line.split_once(':').unwrap_or((&line, ""));
                    let name = name.trim();
                    if name.is_empty() {
                        anyhow::bail!("{origin}: category {}: a technology has no name: `{line}`", entry.name);
                    }
                    let id = technologies.len();
                    let mut words: Vec<String> =
                        std::iter::once(name).chain(rest.split(',')).map(text::terms).collect();
                    words.retain(|w| !w.is_empty());
                    words.sort_unstable();
                    words.dedup();
                    keywords.extend(words.iter().map(|w| (w.clone(), Pattern::Technology(id))));
                    technologies.push(Technology { name: name.to_string(), category: index, keywords: words });
                }
            }
        }
        keywords.retain(|(w, _)| !w.is_empty());
        let automaton = AhoCorasick::new(keywords.iter().map(|(w, _)| format!(" {w} ")))?;
        let patterns = keywords.into_iter().map(|(_, p)| p).collect();
        Ok(Self { categories, technologies, hints, patterns, automaton })
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn technologies(&self) -> &[Technology] {
        &self.technologies
    }

    /// The entries whose name or keywords (technologies) or words (hints) hold one of `words`,
    /// compared as whole lower-case words ("cert-manager" gives two: "cert" and "manager").
    pub fn mask(&self, words: &[String]) -> Mask {
        let words: Vec<String> =
            words.iter().flat_map(|w| text::terms(w).split(' ').map(str::to_string).collect::<Vec<_>>()).collect();
        let names = |phrase: &str| phrase.split(' ').any(|w| words.iter().any(|x| x == w));
        Mask {
            technologies: self.technologies.iter().map(|t| t.keywords.iter().any(|k| names(k))).collect(),
            hints: self.hints.iter().map(|h| names(&h.words)).collect(),
        }
    }

    /// Scores categories by the technologies and hints found in `fields`, each (text, weight),
    /// leaving out what `mask` masks. A match inside a longer match ("kafka" in "kafka connect")
    /// is ignored, so the more specific entry decides.
    pub fn evidence(&self, fields: &[(&str, f32)], mask: &Mask) -> Evidence {
        let mut evidence = Evidence::default();
        let mut per_technology: HashMap<usize, f32> = HashMap::new();
        for (field, weight) in fields {
            let haystack = text::searchable(field);
            // Keyword patterns are padded with spaces, so matches overlap by at least that space.
            let mut found: Vec<(usize, usize, Pattern)> = self
                .automaton
                .find_overlapping_iter(&haystack)
                .map(|m| (m.start(), m.end(), self.patterns[m.pattern().as_usize()]))
                .filter(|(_, _, pattern)| !mask.pattern(*pattern))
                .collect();
            found.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
            let mut seen_technologies = Vec::new();
            let mut seen_hints = Vec::new();
            for (i, &(start, end, pattern)) in found.iter().enumerate() {
                let inside_longer = found.iter().enumerate().any(|(j, &(s, e, _))| {
                    j != i && s <= start && end <= e && (e - s) > (end - start) && !is_hint(&found[j].2)
                });
                if inside_longer {
                    continue;
                }
                match pattern {
                    Pattern::Technology(id) if !seen_technologies.contains(&id) => {
                        seen_technologies.push(id);
                        *per_technology.entry(id).or_default() += weight;
                    }
                    Pattern::Hint(id) if !seen_hints.contains(&self.hints[id].category) => {
                        seen_hints.push(self.hints[id].category);
                        *evidence.hints.entry(self.hints[id].category).or_default() += weight * HINT_WEIGHT;
                    }
                    _ => {}
                }
            }
        }
        for (&id, &score) in &per_technology {
            *evidence.products.entry(self.technologies[id].category).or_default() += score;
        }
        evidence.technology =
            per_technology.into_iter().max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0))).map(|(id, _)| id);
        evidence
    }
}

/// Words that name a service ("PostgreSQL", "S.M.A.R.T Device Monitoring"), for masking the
/// catalog entries that list it: its words of three letters or more, and the name with its
/// punctuation dropped ("smart"), leaving out joining words.
pub fn naming(service: &str) -> Vec<String> {
    let joined: String = service.chars().filter(|c| c.is_alphanumeric() || c.is_whitespace()).collect();
    let mut words: Vec<String> = format!("{} {}", text::terms(service), text::terms(&joined))
        .split(' ')
        .filter(|w| w.chars().count() >= 3 && !["and", "the", "for", "with"].contains(w))
        .map(str::to_string)
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

fn is_hint(pattern: &Pattern) -> bool {
    matches!(pattern, Pattern::Hint(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::load(&[] as &[&str]).unwrap()
    }

    fn best(catalog: &Catalog, fields: &[(&str, f32)]) -> Option<String> {
        let evidence = catalog.evidence(fields, &Mask::default());
        let best = evidence.products.iter().chain(&evidence.hints).max_by(|a, b| a.1.total_cmp(b.1))?;
        Some(catalog.categories()[*best.0].name.clone())
    }

    #[test]
    fn the_built_in_catalog_is_broad() {
        let catalog = catalog();
        assert!(catalog.technologies().len() >= 300, "{}", catalog.technologies().len());
        assert!(catalog.categories().len() >= 12);
        assert!(catalog.categories().iter().all(|c| !c.description.is_empty()));
    }

    #[test]
    fn products_are_found_in_camel_case_names_and_jobs() {
        let catalog = catalog();
        assert_eq!(best(&catalog, &[("MysqlSlaveIoThreadNotRunning", 3.0)]).as_deref(), Some("database"));
        assert_eq!(best(&catalog, &[("RabbitmqTooManyMessagesInQueue", 3.0)]).as_deref(), Some("messaging"));
        assert_eq!(best(&catalog, &[("x", 3.0), ("node-exporter", 3.0)]).as_deref(), Some("infrastructure"));
    }

    #[test]
    fn a_longer_match_wins_over_the_word_inside_it() {
        let catalog = Catalog::parse(&[(
            "test".into(),
            r#"
            [[category]]
            name = "messaging"
            technologies = ["Kafka"]
            [[category]]
            name = "data-engineering"
            technologies = ["Kafka Connect: kafka connect"]
            "#
            .into(),
        )])
        .unwrap();
        assert_eq!(best(&catalog, &[("KafkaConnectTaskFailed", 3.0)]).as_deref(), Some("data-engineering"));
        assert_eq!(best(&catalog, &[("KafkaBrokerDown", 3.0)]).as_deref(), Some("messaging"));
    }

    #[test]
    fn user_files_extend_categories_and_name_their_errors() {
        let extra = r#"
            [[category]]
            name = "database"
            technologies = ["Frobnicator DB: frobdb"]
            [[category]]
            name = "payments"
            description = "Payment processing"
            technologies = ["Stripe"]
        "#;
        let catalog =
            Catalog::parse(&[("built-in".into(), BUILT_IN.into()), ("mine.toml".into(), extra.into())]).unwrap();
        assert_eq!(best(&catalog, &[("FrobdbReplicaLag", 3.0)]).as_deref(), Some("database"));
        assert_eq!(best(&catalog, &[("StripeWebhookErrors", 3.0)]).as_deref(), Some("payments"));
        let error = Catalog::parse(&[("mine.toml".into(), "[[category]]\nnme = 1".into())]).err().unwrap();
        assert!(error.to_string().contains("mine.toml"), "{error}");
    }

    #[test]
    fn services_are_named_by_their_words_and_their_joined_name() {
        assert_eq!(naming("S.M.A.R.T Device Monitoring"), ["device", "monitoring", "smart"]);
        assert_eq!(naming("Host and hardware"), ["hardware", "host"]);
        assert_eq!(naming("cert-manager"), ["cert", "certmanager", "manager"]);
    }

    #[test]
    fn masked_entries_and_hints_are_not_matched() {
        let catalog = catalog();
        let fields = [("MysqlSlaveIoThreadNotRunning", 3.0), ("replication stopped", 2.0)];
        let all = catalog.evidence(&fields, &Mask::default());
        assert!(all.technology.is_some());
        let mask = catalog.mask(&["MySQL".to_string()]);
        let without = catalog.evidence(&fields, &mask);
        assert!(without.technology.is_none_or(|t| catalog.technologies()[t].name != "MySQL"), "{without:?}");
        assert!(!without.hints.is_empty(), "hints without the word still count");
        let hints = catalog.mask(&["replication".to_string()]);
        assert!(catalog.evidence(&[("replication", 2.0)], &hints).hints.is_empty());
        assert!(mask.or(&hints).technology(catalog.technologies().iter().position(|t| t.name == "MySQL").unwrap()));
    }
}

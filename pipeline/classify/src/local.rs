//! The local classifier: Quench's default, and the LLM's fallback.
//!
//! Category: the technology catalog first (whole-word matches of product names in the alert's
//! name, job and texts); when it finds nothing, embeddings decide, comparing the alert with the
//! catalog's technology names, the categories' descriptions and the nearest labelled examples.
//! Severity: the alert's own severity label when it has one, otherwise keyword rules and the
//! nearest examples vote. Users' rules override both.

use std::{num::NonZeroUsize, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    catalog::Catalog,
    corpus::CorpusAlert,
    embed::{cosine, default_model_dir, Embedder, Vector},
    rules::{Rule, RuleConfig},
    severity::{self, LEVELS},
    subject::{self, Classification, Subject},
    taxonomy::Taxonomy,
    text,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Directory with all-MiniLM-L6-v2's `model.safetensors`, `config.json`, `tokenizer.json`.
    pub model_dir: PathBuf,
    /// Labelled examples (JSON lines in the corpus format); empty means the built-in ones.
    pub examples: Option<PathBuf>,
    /// Technology catalogs that extend the built-in one.
    pub catalogs: Vec<PathBuf>,
    /// Users' rules, tried in order before anything else.
    pub rules: Vec<RuleConfig>,
    /// Neighbours that vote.
    pub neighbours: usize,
    /// Also use up to this many incidents that an LLM classified, read from ClickHouse when the
    /// worker starts, as labelled examples (0: none).
    pub history: usize,
    /// Embeddings kept, by template text.
    pub embedding_cache: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            model_dir: default_model_dir(),
            examples: None,
            catalogs: Vec::new(),
            rules: Vec::new(),
            neighbours: 5,
            history: 0,
            embedding_cache: 100_000,
        }
    }
}

impl LocalConfig {
    /// `Err((key, message))` naming the key under `classify.local`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.neighbours == 0 {
            return Err(("neighbours".into(), "must be at least 1".into()));
        }
        if self.embedding_cache == 0 {
            return Err(("embedding_cache".into(), "must be at least 1".into()));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            Rule::compile(rule).map_err(|e| (format!("rules[{i}]"), e))?;
        }
        Ok(())
    }
}

/// A labelled example, embedded.
pub struct Example {
    pub service: String,
    category: Option<usize>,
    /// Index into [`LEVELS`].
    severity: Option<usize>,
    vector: Vector,
}

pub struct LocalClassifier {
    taxonomy: Taxonomy,
    catalog: Catalog,
    /// Catalog category index → taxonomy category index.
    catalog_to_taxonomy: Vec<Option<usize>>,
    embedder: Embedder,
    examples: Vec<Example>,
    /// Per catalog technology, the embedding of its name.
    technology_vectors: Vec<Vector>,
    /// Per taxonomy category, the embedding of "name: description".
    category_vectors: Vec<Vector>,
    rules: Vec<Rule>,
    neighbours: usize,
}

impl LocalClassifier {
    /// Loads the model, the catalogs and the examples, and embeds the examples and the catalog.
    pub fn load(config: &LocalConfig, mut taxonomy: Taxonomy) -> anyhow::Result<Self> {
        let catalog = Catalog::load(&config.catalogs)?;
        taxonomy.fill_categories(&catalog);
        let capacity = NonZeroUsize::new(config.embedding_cache).unwrap_or(NonZeroUsize::MIN);
        let embedder = Embedder::load(&config.model_dir, capacity)?;
        let examples = crate::corpus::load_or_built_in(config.examples.as_deref())?;
        let rules = config.rules.iter().map(Rule::compile).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?;
        let catalog_to_taxonomy =
            catalog.categories().iter().map(|c| taxonomy.categories.iter().position(|t| t.name == c.name)).collect();
        let names: Vec<&str> = catalog.technologies().iter().map(|t| t.name.as_str()).collect();
        let technology_vectors = embedder.embed_stored(&names, &config.model_dir)?;
        let descriptions: Vec<String> =
            taxonomy.categories.iter().map(|c| format!("{}: {}", c.name, c.description)).collect();
        let descriptions: Vec<&str> = descriptions.iter().map(String::as_str).collect();
        let category_vectors = embedder.embed_stored(&descriptions, &config.model_dir)?;
        let mut classifier = Self {
            taxonomy,
            catalog,
            catalog_to_taxonomy,
            embedder,
            examples: Vec::new(),
            technology_vectors,
            category_vectors,
            rules,
            neighbours: config.neighbours,
        };
        let templates = example_templates(&examples);
        let templates: Vec<&str> = templates.iter().map(String::as_str).collect();
        let vectors = classifier.embedder.embed_stored(&templates, &config.model_dir)?;
        // Stored vectors bypass the in-memory cache; subjects with an example's template hit it.
        classifier.embedder.remember(&templates, &vectors);
        classifier.push_examples(&examples, vectors);
        Ok(classifier)
    }

    /// Adds labelled examples (the user's history); their severities may be on the configured
    /// scale or the examples' three levels. Returns how many were usable.
    pub fn add_examples(&mut self, alerts: &[CorpusAlert]) -> anyhow::Result<usize> {
        let templates = example_templates(alerts);
        let vectors = self.embedder.embed(&templates.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(self.push_examples(alerts, vectors))
    }

    fn push_examples(&mut self, alerts: &[CorpusAlert], vectors: Vec<Vector>) -> usize {
        let before = self.examples.len();
        for (alert, vector) in alerts.iter().zip(vectors) {
            let Some(expected) = &alert.expected else { continue };
            let category = self.taxonomy.categories.iter().position(|c| c.name == expected.category);
            let severity = self.level_of(&expected.severity);
            if category.is_some() || severity.is_some() {
                self.examples.push(Example { service: alert.service.clone(), category, severity, vector });
            }
        }
        self.examples.len() - before
    }

    /// Which of [`LEVELS`] a severity word stands for: itself, or by its place on the scale
    /// (the most severe is critical, the least info, the rest warning).
    fn level_of(&self, severity: &str) -> Option<usize> {
        if let Some(level) = LEVELS.iter().position(|l| *l == severity) {
            return Some(level);
        }
        let scale = self.taxonomy.scale.levels();
        let on_scale = self.taxonomy.severity(severity)?;
        let position = scale.iter().position(|s| s == on_scale)?;
        Some(if position == 0 {
            0
        } else if position + 1 == scale.len() {
            2
        } else {
            1
        })
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    pub fn classify(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        self.classify_with(subjects, |_| true)
    }

    /// Classifies with only the examples that `keep` accepts as neighbours (how `quench eval`
    /// leaves services out).
    pub fn classify_with(
        &self,
        subjects: &[Subject],
        keep: impl Fn(&Example) -> bool,
    ) -> anyhow::Result<Vec<Classification>> {
        let templates: Vec<String> = subjects.iter().map(subject::template).collect();
        let vectors = self.embedder.embed(&templates.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(subjects.iter().zip(&vectors).map(|(s, v)| self.decide(s, v, &keep)).collect())
    }

    fn decide(&self, subject: &Subject, vector: &[f32], keep: &impl Fn(&Example) -> bool) -> Classification {
        let categories = self.taxonomy.categories.len();
        let neighbours = self.neighbours(vector, keep);
        let mut knn = vec![0.0f32; categories];
        let mut knn_severity = [0.0f32; 3];
        for (example, similarity) in &neighbours {
            let weight = similarity.max(0.0).powi(2);
            if let Some(c) = example.category {
                knn[c] += weight;
            }
            if let Some(s) = example.severity {
                knn_severity[s] += weight;
            }
        }
        normalise(&mut knn);
        normalise(&mut knn_severity);

        let evidence = self.catalog.evidence(&subject::fields(subject));
        let mut catalog = vec![0.0f32; categories];
        for (&c, &score) in &evidence.scores {
            if let Some(t) = self.catalog_to_taxonomy[c] {
                catalog[t] += score;
            }
        }
        let (scores, from_catalog) = if catalog.iter().any(|s| *s > 0.0) {
            let top = catalog.iter().cloned().fold(0.0, f32::max);
            (catalog.iter().zip(&knn).map(|(c, k)| c / top + 0.3 * k).collect::<Vec<_>>(), true)
        } else {
            (self.embedding_scores(vector, &knn), false)
        };
        let (category, confidence) = best(&scores);
        let confidence = if from_catalog { 0.6 + 0.39 * confidence } else { 0.2 + 0.5 * confidence };

        let severity = match subject.labels.get("severity").and_then(|s| self.taxonomy.severity(s)) {
            Some(level) => level.to_string(),
            None => {
                let words = text::words(&text::split_camel(&format!(
                    "{} {} {}",
                    subject.alertnames.join(" "),
                    subject.summary,
                    subject.description
                )));
                let mut votes = severity::keyword_votes(&format!(" {words} "));
                normalise(&mut votes);
                let mut combined: Vec<f32> = votes.iter().zip(&knn_severity).map(|(k, n)| k + 0.5 * n).collect();
                // Most rules are warnings: with weak evidence either way, warning is the better bet.
                combined[1] += 0.3;
                let (level, _) = best(&combined);
                self.level_on_scale(level)
            }
        };
        let mut category = self.taxonomy.categories[category].name.clone();
        let mut severity = severity;
        let mut confidence = confidence;
        if let Some(rule) = self.rules.iter().find(|r| r.matches(subject)) {
            category = rule.category.clone().unwrap_or(category);
            severity = rule.severity.clone().unwrap_or(severity);
            confidence = 1.0;
        }
        let technology = evidence.technology.map(|t| self.catalog.technologies()[t].name.as_str());
        Classification {
            priority: self.taxonomy.priority(&severity, subject.alerts),
            severity,
            category,
            confidence,
            summary: summary(subject, technology),
            classified_by: "local".into(),
        }
    }

    /// When no catalog entry matched: how close the alert is to each category's technologies
    /// and description, with the neighbours' votes.
    fn embedding_scores(&self, vector: &[f32], knn: &[f32]) -> Vec<f32> {
        let mut technology = vec![0.0f32; knn.len()];
        for (tech, tv) in self.catalog.technologies().iter().zip(&self.technology_vectors) {
            if let Some(c) = self.catalog_to_taxonomy[tech.category] {
                technology[c] = technology[c].max(cosine(vector, tv));
            }
        }
        let description: Vec<f32> = self.category_vectors.iter().map(|cv| cosine(vector, cv)).collect();
        (0..knn.len()).map(|c| knn[c] + technology[c] + 0.5 * description[c]).collect()
    }

    fn neighbours<'a>(&'a self, vector: &[f32], keep: &impl Fn(&Example) -> bool) -> Vec<(&'a Example, f32)> {
        let mut scored: Vec<(&Example, f32)> =
            self.examples.iter().filter(|e| keep(e)).map(|e| (e, cosine(vector, &e.vector))).collect();
        let k = self.neighbours.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored
    }

    /// A level of [`LEVELS`] on the configured scale; a scale without it takes its middle level.
    fn level_on_scale(&self, level: usize) -> String {
        match self.taxonomy.severity(LEVELS[level]) {
            Some(s) => s.to_string(),
            None => {
                let levels = self.taxonomy.scale.levels();
                levels[levels.len() / 2].clone()
            }
        }
    }

    /// Whether the catalog recognised something in the subject (rather than embeddings deciding),
    /// for `quench eval` to report how often it did.
    pub fn catalog_decides(&self, subject: &Subject) -> bool {
        self.catalog.evidence(&subject::fields(subject)).scores.keys().any(|c| self.catalog_to_taxonomy[*c].is_some())
    }
}

fn example_templates(alerts: &[CorpusAlert]) -> Vec<String> {
    alerts.iter().map(|a| subject::template(&Subject::from_alert(&a.id, &a.labels, &a.annotations))).collect()
}

fn normalise(values: &mut [f32]) {
    let sum: f32 = values.iter().sum();
    if sum > 0.0 {
        values.iter_mut().for_each(|v| *v /= sum);
    }
}

/// The index of the highest score and its share of the top two (0.5 for a tie, 1 when alone).
fn best(scores: &[f32]) -> (usize, f32) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let top = scores[order[0]].max(0.0);
    let second = order.get(1).map_or(0.0, |i| scores[*i].max(0.0));
    let share = if top + second > 0.0 { top / (top + second) } else { 0.5 };
    (order[0], (share - 0.5) * 2.0)
}

/// "PostgreSQL: Too many connections on db-1".
fn summary(subject: &Subject, technology: Option<&str>) -> String {
    let what = if subject.summary.trim().is_empty() {
        subject.alertnames.first().map(|n| text::split_camel(n)).unwrap_or_else(|| "Incident".into())
    } else {
        subject.summary.lines().next().unwrap_or_default().trim().to_string()
    };
    let line = match technology {
        Some(tech) if !what.to_lowercase().starts_with(&tech.to_lowercase()) => format!("{tech}: {what}"),
        _ => what,
    };
    line.chars().take(200).collect()
}

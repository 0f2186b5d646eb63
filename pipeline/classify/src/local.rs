//! The local classifier: Quench's default, and the LLM's fallback.
//!
//! Category: one calibrated model ([`Logit`]) weighs, for every category, the catalog's product
//! matches (a product the catalog lists nearly decides), its generic hints, a word model's
//! probability over the alert's words (names, texts, metric and label names), the nearest labelled
//! examples' votes, and the alert's embedding against the category's description and products.
//! It is fitted when the classifier loads, on evidence each example gets from the other
//! services' examples, half the time with its own product's catalog entries masked: so the
//! model learns what each signal is worth for products it has never seen, and the probability
//! it gives is the confidence Quench reports. Severity: the alert's own severity label when it
//! has one, otherwise a second such model over the words (with the expression's shape, its
//! `for:` and the category), the neighbours' votes and keyword rules. Users' rules override both.

use std::{collections::HashMap, num::NonZeroUsize, path::PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    catalog::{self, Catalog, Mask},
    corpus::{CorpusAlert, Folds},
    embed::{cosine, default_model_dir, Embedder, Vector},
    features,
    logit::{self, Logit},
    rules::{Rule, RuleConfig},
    severity::{self, LEVELS},
    subject::{self, Classification, Subject},
    taxonomy::Taxonomy,
    text,
    words::{WordModel, FLOOR},
};

/// Folds of the examples' services for the out-of-fold evidence the models are fitted on.
const FOLDS: usize = 5;

/// Kinds of category evidence: the product match anywhere and in the names, then five kinds
/// once for subjects without a product match and once for those with one (how much the rest is
/// worth depends on it).
const CATEGORY_KINDS: usize = 12;

/// Where the category model's weights start and are drawn to, kind by kind (see
/// [`CATEGORY_KINDS`]): what decides for a taxonomy whose categories no example has, so that
/// products, descriptions and hints still place alerts there.
const CATEGORY_PRIOR: [f64; CATEGORY_KINDS] = [3.0, 1.0, 0.0, 1.0, 5.0, 3.0, 2.0, 0.0, 0.5, 3.0, 3.0, 1.0];

/// The same for severity: the word model, neighbours, keyword rules.
const SEVERITY_PRIOR: [f64; 3] = [1.0, 0.5, 1.0];

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
    subject: Subject,
    category: Option<usize>,
    /// Index into [`LEVELS`].
    severity: Option<usize>,
    vector: Vector,
}

/// What a fit learned from some of the examples, with some catalog entries masked.
#[derive(Default)]
pub struct Model {
    /// Indices of the examples it may use as neighbours and learned words from.
    members: Vec<usize>,
    mask: Mask,
    category_words: WordModel,
    severity_words: WordModel,
    category: Logit,
    severity: Logit,
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
    /// Fitted on all examples with the whole catalog: what the worker classifies with.
    model: Model,
}

impl LocalClassifier {
    /// Loads the model, the catalogs and the examples, embeds the examples and the catalog, and
    /// fits the calibrated models.
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
            model: Model::default(),
        };
        let templates = example_templates(&examples);
        let templates: Vec<&str> = templates.iter().map(String::as_str).collect();
        let vectors = classifier.embedder.embed_stored(&templates, &config.model_dir)?;
        // Stored vectors bypass the in-memory cache; subjects with an example's template hit it.
        classifier.embedder.remember(&templates, &vectors);
        classifier.push_examples(&examples, vectors);
        classifier.model = classifier.fit(|_| true, &[]);
        Ok(classifier)
    }

    /// Adds labelled examples (the user's history) and fits the models again; their severities
    /// may be on the configured scale or the examples' three levels. Returns how many were usable.
    pub fn add_examples(&mut self, alerts: &[CorpusAlert]) -> anyhow::Result<usize> {
        let templates = example_templates(alerts);
        let vectors = self.embedder.embed(&templates.iter().map(String::as_str).collect::<Vec<_>>())?;
        let added = self.push_examples(alerts, vectors);
        self.model = self.fit(|_| true, &[]);
        Ok(added)
    }

    fn push_examples(&mut self, alerts: &[CorpusAlert], vectors: Vec<Vector>) -> usize {
        let before = self.examples.len();
        for (alert, vector) in alerts.iter().zip(vectors) {
            let Some(expected) = &alert.expected else { continue };
            let category = self.taxonomy.categories.iter().position(|c| c.name == expected.category);
            let severity = self.level_of(&expected.severity);
            if category.is_some() || severity.is_some() {
                // Without a service (the history's incidents), alerts of one rule stay together in
                // one fold, so that no fold is judged by copies of its own alerts.
                let service = match (alert.service.is_empty(), alert.labels.get("alertname")) {
                    (false, _) => alert.service.clone(),
                    (true, Some(name)) => name.clone(),
                    (true, None) => alert.id.clone(),
                };
                self.examples.push(Example { service, subject: alert.subject(), category, severity, vector });
            }
        }
        self.examples.len() - before
    }

    /// Fits the models on the examples `keep` accepts, with the catalog entries that name one of
    /// `without` masked (how `quench eval` leaves services and products out).
    pub fn fit(&self, keep: impl Fn(&Example) -> bool, without: &[String]) -> Model {
        let mask = self.catalog.mask(without);
        let members: Vec<usize> = (0..self.examples.len()).filter(|i| keep(&self.examples[*i])).collect();
        let folds = Folds::deal(members.iter().map(|i| self.examples[*i].service.as_str()), FOLDS);
        let fold_of = |i: usize| folds.of(&self.examples[i].service);
        let mut masks: HashMap<&str, Mask> = HashMap::new();
        let mut category_rows = Vec::new();
        let mut severity_rows = Vec::new();
        for fold in 0..FOLDS {
            let (inside, outside): (Vec<usize>, Vec<usize>) = members.iter().partition(|i| fold_of(**i) == fold);
            let (category_words, severity_words) = self.word_models(&outside);
            for &i in &inside {
                let example = &self.examples[i];
                let neighbours = self.neighbours(&example.vector, &outside);
                if let Some(category) = example.category {
                    let own = masks
                        .entry(example.service.as_str())
                        .or_insert_with(|| mask.or(&self.catalog.mask(&catalog::naming(&example.service))));
                    let evidence = |mask| {
                        self.category_evidence(&example.subject, &example.vector, &neighbours, &category_words, mask).0
                    };
                    let whole = evidence(&mask);
                    let masked = evidence(own);
                    // The row as if the catalog did not list its product, where it does.
                    if masked != whole {
                        category_rows.push((masked, category));
                    }
                    category_rows.push((whole, category));
                }
                if let Some(severity) = example.severity {
                    let evidence = self.severity_evidence(
                        &example.subject,
                        self.category_of(example),
                        &neighbours,
                        &severity_words,
                    );
                    severity_rows.push((evidence, severity));
                }
            }
        }
        let (category_words, severity_words) = self.word_models(&members);
        let category = Logit::fit(&category_rows, self.taxonomy.categories.len(), &CATEGORY_PRIOR);
        let severity = Logit::fit(&severity_rows, LEVELS.len(), &SEVERITY_PRIOR);
        tracing::debug!(?category, ?severity, examples = members.len(), "fitted the local classifier's models");
        Model { category, severity, members, mask, category_words, severity_words }
    }

    /// Word models of the categories and the severities, fitted on `members`.
    fn word_models(&self, members: &[usize]) -> (WordModel, WordModel) {
        let mut categories = Vec::new();
        let mut severities = Vec::new();
        for example in members.iter().map(|i| &self.examples[*i]) {
            if let Some(category) = example.category {
                categories.push((features::words(&example.subject), category));
            }
            if let Some(severity) = example.severity {
                severities.push((features::severity_words(&example.subject, self.category_of(example)), severity));
            }
        }
        (WordModel::fit(&categories, self.taxonomy.categories.len()), WordModel::fit(&severities, LEVELS.len()))
    }

    /// The name of the example's category, empty without one.
    fn category_of(&self, example: &Example) -> &str {
        example.category.map_or("", |c| self.taxonomy.categories[c].name.as_str())
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

    /// The model the worker classifies with: fitted on all examples with the whole catalog.
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn classify(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        self.classify_with(subjects, &self.model)
    }

    /// Classifies with `model` (how `quench eval` classifies with a model fitted without the
    /// services it scores).
    pub fn classify_with(&self, subjects: &[Subject], model: &Model) -> anyhow::Result<Vec<Classification>> {
        let templates: Vec<String> = subjects.iter().map(subject::template).collect();
        let vectors = self.embedder.embed(&templates.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(subjects.iter().zip(&vectors).map(|(s, v)| self.decide(s, v, model)).collect())
    }

    fn decide(&self, subject: &Subject, vector: &[f32], model: &Model) -> Classification {
        let neighbours = self.neighbours(vector, &model.members);
        let (evidence, found) =
            self.category_evidence(subject, vector, &neighbours, &model.category_words, &model.mask);
        let (category, confidence) = best(&model.category.probabilities(&evidence));
        let mut category = self.taxonomy.categories[category].name.clone();
        let mut severity = match subject.labels.get("severity").and_then(|s| self.taxonomy.severity(s)) {
            Some(level) => level.to_string(),
            None => {
                let evidence = self.severity_evidence(subject, &category, &neighbours, &model.severity_words);
                self.level_on_scale(best(&model.severity.probabilities(&evidence)).0)
            }
        };
        let mut confidence = confidence;
        if let Some(rule) = self.rules.iter().find(|r| r.matches(subject)) {
            category = rule.category.clone().unwrap_or(category);
            severity = rule.severity.clone().unwrap_or(severity);
            confidence = 1.0;
        }
        let technology = found.technology.map(|t| self.catalog.technologies()[t].name.as_str());
        Classification {
            priority: self.taxonomy.priority(&severity, subject.alerts),
            severity,
            category,
            confidence,
            summary: summary(subject, technology),
            classified_by: "local".into(),
        }
    }

    /// Per category: the product match anywhere and in the names, then the word model, neighbours, description, products'
    /// names and hints, placed by whether a product matched; with what the catalog found.
    fn category_evidence(
        &self,
        subject: &Subject,
        vector: &[f32],
        neighbours: &[(&Example, f32)],
        words: &WordModel,
        mask: &Mask,
    ) -> (logit::Evidence, catalog::Evidence) {
        let categories = self.taxonomy.categories.len();
        let found = self.catalog_evidence(subject, mask, true);
        let per_category = |scores: &HashMap<usize, f32>| {
            let mut out = vec![0.0f32; categories];
            for (c, score) in scores {
                if let Some(t) = self.catalog_to_taxonomy[*c] {
                    out[t] += score;
                }
            }
            let top = out.iter().copied().fold(0.0, f32::max);
            if top > 0.0 {
                out.iter_mut().for_each(|v| *v /= top);
            }
            out
        };
        let products = per_category(&found.products);
        let named = per_category(&self.catalog_evidence(subject, mask, false).products);
        let hints = per_category(&found.hints);
        let matched = products.iter().any(|p| *p > 0.0);
        let posterior = words.log_probabilities(&features::words(subject));
        let mut votes = vec![0.0f32; categories];
        for (example, similarity) in neighbours {
            if let Some(c) = example.category {
                votes[c] += similarity.max(0.0).powi(2);
            }
        }
        normalise(&mut votes);
        let mut technology = vec![0.0f32; categories];
        for (id, (tech, tv)) in self.catalog.technologies().iter().zip(&self.technology_vectors).enumerate() {
            if let (Some(c), false) = (self.catalog_to_taxonomy[tech.category], mask.technology(id)) {
                technology[c] = technology[c].max(cosine(vector, tv));
            }
        }
        let evidence = (0..categories)
            .map(|c| {
                let rest = [
                    posterior[c] / -FLOOR,
                    votes[c],
                    cosine(vector, &self.category_vectors[c]),
                    technology[c],
                    hints[c],
                ];
                let (without, with) = if matched { ([0.0; 5], rest) } else { (rest, [0.0; 5]) };
                [products[c], named[c]].into_iter().chain(without).chain(with).collect()
            })
            .collect();
        (evidence, found)
    }

    /// Per level of [`LEVELS`]: the word model, the neighbours' votes and the keyword rules.
    fn severity_evidence(
        &self,
        subject: &Subject,
        category: &str,
        neighbours: &[(&Example, f32)],
        words: &WordModel,
    ) -> logit::Evidence {
        let posterior = words.log_probabilities(&features::severity_words(subject, category));
        let mut votes = [0.0f32; 3];
        for (example, similarity) in neighbours {
            if let Some(s) = example.severity {
                votes[s] += similarity.max(0.0).powi(2);
            }
        }
        normalise(&mut votes);
        let text = text::words(&text::split_camel(&format!(
            "{} {} {}",
            subject.alertnames.join(" "),
            subject.summary,
            subject.description
        )));
        let mut keywords = severity::keyword_votes(&format!(" {text} "));
        normalise(&mut keywords);
        (0..LEVELS.len()).map(|s| vec![posterior[s] / -FLOOR, votes[s], keywords[s]]).collect()
    }

    /// The nearest of `candidates` (indices of examples) to `vector`, with their similarity.
    fn neighbours(&self, vector: &[f32], candidates: &[usize]) -> Vec<(&Example, f32)> {
        let mut scored: Vec<(&Example, f32)> =
            candidates.iter().map(|i| &self.examples[*i]).map(|e| (e, cosine(vector, &e.vector))).collect();
        let k = self.neighbours.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored
    }

    /// A level of [`LEVELS`] on the configured scale; a scale without its name takes the level
    /// at its place (critical the most severe, info the least, warning the middle one).
    fn level_on_scale(&self, level: usize) -> String {
        match self.taxonomy.severity(LEVELS[level]) {
            Some(s) => s.to_string(),
            None => {
                let levels = self.taxonomy.scale.levels();
                let place = match level {
                    0 => 0,
                    2 => levels.len() - 1,
                    _ => levels.len() / 2,
                };
                levels[place].clone()
            }
        }
    }

    /// Whether the catalog recognised a product in the subject with `model`'s mask (hints do not
    /// count), for `quench eval` to report how often it did.
    pub fn catalog_decides(&self, subject: &Subject, model: &Model) -> bool {
        let found = self.catalog_evidence(subject, &model.mask, true);
        found.products.keys().any(|c| self.catalog_to_taxonomy[*c].is_some())
    }

    /// What the catalog finds in the subject's names, labels and (with `texts`) texts, and in
    /// the names of the metrics and labels it carries.
    fn catalog_evidence(&self, subject: &Subject, mask: &Mask, texts: bool) -> catalog::Evidence {
        let names = features::names(subject);
        let mut fields = if texts { subject::fields(subject) } else { subject::name_fields(subject) };
        fields.push((names.as_str(), 2.0));
        self.catalog.evidence(&fields, mask)
    }
}

fn example_templates(alerts: &[CorpusAlert]) -> Vec<String> {
    alerts.iter().map(|a| subject::template(&a.subject())).collect()
}

fn normalise(values: &mut [f32]) {
    let sum: f32 = values.iter().sum();
    if sum > 0.0 {
        values.iter_mut().for_each(|v| *v /= sum);
    }
}

/// The index of the highest probability and the probability.
fn best(probabilities: &[f32]) -> (usize, f32) {
    probabilities.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0))
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

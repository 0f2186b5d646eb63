//! The classification stage: the cache, then the LLM in batches behind the circuit breaker, with
//! the local classifier as the default and the fallback.
//!
//! Incidents are looked up by signature ([`Subject::signature`]), so a storm of re-sent or
//! repeated incidents costs no call, and incidents that share a signature in one batch cost one.
//! Whatever the LLM cannot answer (an outage, an open breaker, items missing from its answer) the
//! local classifier answers at once, marked [`FALLBACK`]; such answers are not trusted by the
//! cache once the LLM is back, and [`Classifier::take_recovered`] tells the worker when to have
//! its fallback-classified open incidents classified again.

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use crate::{
    breaker::Breaker,
    cache::Lru,
    config::{ClassifyConfig, ProviderKind},
    llm::{prompt::Item, Llm},
    redact::Redactor,
    subject::{Classification, Subject},
    LocalClassifier,
};

/// `classified_by` of an incident the local classifier answered because the LLM could not.
pub const FALLBACK: &str = "local-fallback";

pub struct Classifier {
    local: LocalClassifier,
    llm: Option<Llm>,
    breaker: Mutex<Breaker>,
    cache: Mutex<Lru<String, Classification>>,
    max_batch: usize,
    /// Longest a batch may take, retries included, before its incidents fall back.
    batch_deadline: Duration,
    recovered: AtomicBool,
    calls: AtomicU64,
}

impl Classifier {
    pub fn new(config: &ClassifyConfig) -> anyhow::Result<Self> {
        let local = LocalClassifier::load(&config.local, config.taxonomy.clone())?;
        Self::with_local(config, local)
    }

    /// A stage around an already loaded local classifier (whose taxonomy it uses).
    pub fn with_local(config: &ClassifyConfig, local: LocalClassifier) -> anyhow::Result<Self> {
        let llm = match config.provider {
            ProviderKind::Local => None,
            kind => {
                let redactor = Redactor::new(&config.redact.patterns)?;
                Some(Llm::new(kind, &config.llm, local.taxonomy().clone(), redactor)?)
            }
        };
        let capacity = NonZeroUsize::new(config.cache.capacity).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            local,
            llm,
            breaker: Mutex::new(Breaker::new(config.breaker.failures, Duration::from_millis(config.breaker.open_ms))),
            cache: Mutex::new(Lru::new(capacity, Some(Duration::from_secs(config.cache.ttl_s.max(1))))),
            max_batch: config.max_batch.max(1),
            batch_deadline: Duration::from_millis(config.llm.timeout_ms) * (config.llm.max_retries + 1)
                + crate::llm::MAX_WAIT * config.llm.max_retries,
            recovered: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        })
    }

    /// True once after the breaker closed again: open incidents classified by the fallback
    /// should be classified anew.
    pub fn take_recovered(&self) -> bool {
        self.recovered.swap(false, Ordering::SeqCst)
    }

    /// Whether the breaker would let a trial batch through now: a caller holding
    /// fallback-classified incidents should have one classified again, to find out whether the
    /// LLM is back.
    pub fn trial_due(&self) -> bool {
        self.llm.is_some() && self.breaker.lock().expect("breaker").trial_due(Instant::now())
    }

    /// LLM batches attempted so far (retries not counted).
    pub fn llm_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Classifies `subjects`, one answer each, in order.
    pub async fn classify(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        let signatures: Vec<String> = subjects.iter().map(Subject::signature).collect();
        // A fallback answer stands in for the LLM's only until the LLM can be asked again; while
        // the breaker is open, asking costs a local classification (its embeddings are cached).
        let trust_fallbacks = self.llm.is_none();
        let mut answers: Vec<Option<Classification>> = {
            let mut cache = self.cache.lock().expect("classification cache");
            signatures
                .iter()
                .map(|sig| cache.get(sig).filter(|c| trust_fallbacks || c.classified_by != FALLBACK).cloned())
                .collect()
        };
        let hits = answers.iter().filter(|a| a.is_some()).count();
        metrics::counter!("quench_classifications_total", "by" => "cache").increment(hits as u64);
        // One representative per signature not in the cache.
        let mut unique: Vec<Subject> = Vec::new();
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for (i, subject) in subjects.iter().enumerate() {
            if answers[i].is_none() && seen.insert(signatures[i].as_str(), ()).is_none() {
                unique.push(subject.clone());
            }
        }
        let fresh = self.classify_uncached(&unique).await?;
        {
            let mut cache = self.cache.lock().expect("classification cache");
            for (subject, classification) in unique.iter().zip(&fresh) {
                cache.insert(subject.signature(), classification.clone());
            }
        }
        let by_signature: HashMap<String, &Classification> =
            unique.iter().map(Subject::signature).zip(fresh.iter()).collect();
        for (i, answer) in answers.iter_mut().enumerate() {
            if answer.is_none() {
                *answer = by_signature.get(&signatures[i]).map(|c| (*c).clone());
            }
        }
        let taxonomy = self.local.taxonomy();
        Ok(answers
            .into_iter()
            .zip(subjects)
            .map(|(answer, subject)| {
                let mut c = answer.expect("every signature answered");
                // The cached answer came from another incident of this kind; the impact is this one's.
                c.priority = taxonomy.priority(&c.severity, subject.alerts);
                c
            })
            .collect())
    }

    async fn classify_uncached(&self, subjects: &[Subject]) -> anyhow::Result<Vec<Classification>> {
        let Some(llm) = &self.llm else {
            metrics::counter!("quench_classifications_total", "by" => "local").increment(subjects.len() as u64);
            return self.local.classify(subjects);
        };
        let batches = subjects.chunks(self.max_batch).map(|batch| self.ask(llm, batch));
        let answered: HashMap<String, Item> = futures::future::join_all(batches).await.into_iter().flatten().collect();
        let missing: Vec<Subject> = subjects.iter().filter(|s| !answered.contains_key(&s.id)).cloned().collect();
        let mut fallback = self.local.classify(&missing)?.into_iter();
        metrics::counter!("quench_classifications_total", "by" => "llm").increment(answered.len() as u64);
        metrics::counter!("quench_classifications_total", "by" => "fallback").increment(missing.len() as u64);
        let taxonomy = self.local.taxonomy();
        Ok(subjects
            .iter()
            .map(|s| match answered.get(&s.id) {
                Some(item) => Classification {
                    priority: taxonomy.priority(&item.severity, s.alerts),
                    severity: item.severity.clone(),
                    category: item.category.clone(),
                    confidence: item.confidence.unwrap_or(0.8),
                    summary: item.summary.clone(),
                    classified_by: llm.label().to_string(),
                },
                None => {
                    let mut c = fallback.next().expect("one fallback per missing subject");
                    c.classified_by = FALLBACK.into();
                    c
                }
            })
            .collect())
    }

    /// One batch through the breaker and the deadline; what it answered, by id.
    async fn ask(&self, llm: &Llm, batch: &[Subject]) -> Vec<(String, Item)> {
        if !self.breaker.lock().expect("breaker").allow(Instant::now()) {
            metrics::counter!("quench_llm_short_circuited_total").increment(1);
            return Vec::new();
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::time::timeout(self.batch_deadline, llm.classify(batch)).await;
        let mut breaker = self.breaker.lock().expect("breaker");
        match outcome {
            Ok(Ok(items)) => {
                if breaker.success() {
                    tracing::info!("LLM answering again; fallback-classified incidents will be classified again");
                    self.recovered.store(true, Ordering::SeqCst);
                }
                items.into_iter().collect()
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, incidents = batch.len(), "LLM batch failed; the local classifier answers");
                breaker.failure(Instant::now());
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(incidents = batch.len(), "LLM batch past its deadline; the local classifier answers");
                breaker.failure(Instant::now());
                Vec::new()
            }
        }
    }
}
